// The durable part of the store: a directory of segment files, each a run of framed records
// (store/internal/record.h), named after the position of its first record:
//
// clang-format off
//   <data_dir>/LOCK                                  flock()ed while a store has the directory open
//   <data_dir>/segment-00000000000000000001.log      positions 1 .. k
//   <data_dir>/segment-<k+1, 20 digits>.log          positions k+1 .. (the last segment: appended to)
// clang-format on
//
// The durable watermark. Every segment but the last was fdatasynced whole before the next was
// created, so all of it is durable. In the last segment, the log remembers where its last
// successful fdatasync ended (synced_size_) and sets the sync mark on the first record of every
// write that starts exactly there:
//
// clang-format off
//   offset 0          W1                 W2          end of file
//   | batch (synced)  |M batch  batch    |M batch    | ... unsynced, may be torn or holey ...
//                      ^ marked: [0, W1) was durable when this record was written
// clang-format on
//
// Recovery (Open) reads every segment in order and checks every record: frame length, CRC32C,
// field lengths, and that positions are dense from 1 across segment names and records. Records
// reach the caller a request at a time (record.h: the last record of each Append() carries an
// end mark), so a request whose end never reached the disk is dropped whole. A bad record at
// offset X of the last segment is a torn tail when no valid sync-marked record follows it (X lies
// beyond the last durable point the log recorded): it is cut off (ftruncate + fdatasync) with
// everything after it and the complete records of its unfinished request, and reported. A bad
// record that a marked record follows (X was durable: the disk lost synced data), any bad record
// in a segment that is not the last, and a request left open at the end of a segment that is not
// the last, fail Open with DataLoss naming the file and offset. Logs written before sync marks
// carry none: there every bad tail of the last segment reads as torn.
//
// Not thread-safe: the store's writer thread is its only user after Open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/internal/record.h"

namespace metrics::store::internal {

struct RecoveryResult {
  size_t segments = 0;
  uint64_t records = 0;
  uint64_t truncated_bytes = 0;  // torn tail cut off, 0 when the log was clean
  std::string truncated_file;
  uint64_t truncated_offset = 0;
};

class SegmentLog {
 public:
  struct Options {
    std::string dir;
    size_t segment_bytes = size_t{64} << 20;
    // fdatasync a segment before moving on to the next one, and the directory after creating one.
    bool sync_on_roll = true;
  };

  struct Segment {
    uint64_t first_position = 0;
    std::string path;
  };
  // Called for every valid record in position order, with its segment (its index in segments()
  // and the segment) and its offset there. A non-OK status is corruption the log cannot see by
  // itself (e.g. a stream version out of sequence): Open fails with DataLoss naming the file and
  // offset.
  using RecordFn = std::function<absl::Status(const RecordView&, size_t segment_index,
                                              const Segment& segment, uint64_t offset)>;

  static absl::StatusOr<std::unique_ptr<SegmentLog>> Open(const Options& options,
                                                          const RecordFn& on_record,
                                                          RecoveryResult* result);
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  // Appends framed records whose first position is `first_position` with one pwrite (retried on
  // short writes). Starts a new segment first when the current one is non-empty and would grow
  // past segment_bytes; a batch is never split across segments. Sets the sync mark of the first
  // record (rewriting its CRC in *bytes) when the write starts where the last fdatasync ended. On
  // error nothing is undone: the caller decides (UndoLastAppend).
  absl::Status Append(std::string* bytes, uint64_t first_position);
  // Cuts the current segment back to where the last Append started writing and fdatasyncs it, so
  // that none of that append's bytes can surface after a crash. OK: the segment is as before the
  // append, and appending may go on. An error: what is on disk is unknown.
  absl::Status UndoLastAppend();
  // fdatasync of the current segment.
  absl::Status Sync();
  // Sync and close the files, release the directory lock. Idempotent.
  absl::Status Close();

  // Bytes in all segment files.
  uint64_t size_bytes() const { return closed_bytes_ + current_size_; }
  const std::string& current_path() const { return current_path_; }
  // Every segment, oldest first; the last is appended to. Grows when Append rolls.
  const std::vector<Segment>& segments() const { return segments_; }
  // Where the last Append began writing in the current segment.
  uint64_t last_append_offset() const { return append_start_; }

  // "segment-<20 digits>.log"
  static std::string SegmentName(uint64_t first_position);

 private:
  explicit SegmentLog(Options options) : options_(std::move(options)) {}
  absl::Status Roll(uint64_t first_position);

  Options options_;
  int lock_fd_ = -1;
  int fd_ = -1;
  std::string current_path_;
  uint64_t current_size_ = 0;
  uint64_t append_start_ = 0;  // current_size_ when the last Append began writing
  uint64_t closed_bytes_ = 0;
  uint64_t synced_size_ = 0;  // the durable watermark of the current segment
  std::vector<Segment> segments_;
};

}  // namespace metrics::store::internal
