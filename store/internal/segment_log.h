// The durable part of the store: a directory of segment files, each a run of framed records
// (store/internal/record.h), named after the position of its first record:
//
//   <data_dir>/LOCK                                  flock()ed while a store has the directory open
//   <data_dir>/segment-00000000000000000001.log      positions 1 .. k
//   <data_dir>/segment-<k+1, 20 digits>.log          positions k+1 .. (the last segment: appended
//   to)
//
// Recovery (Open) reads every segment in order and checks every record: frame length, CRC32C,
// field lengths, and that positions are dense from 1 across segment names and records. Records
// reach the caller a request at a time (record.h: the last record of each Append() carries an
// end mark), so a request whose end never reached the disk is dropped whole. A bad record at the
// end of the last segment with nothing valid after it is a torn tail: it is cut off (ftruncate +
// fdatasync) together with the complete records of its unfinished request, and reported. Any
// other bad record (in a segment that is not the last, or followed by a valid one), and a request
// left open at the end of a segment that is not the last, fails Open with DataLoss naming the file
// and offset.
//
// Not thread-safe: the store's writer thread is its only user after Open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

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

  // Called for every valid record in position order. A non-OK status is corruption the log
  // cannot see by itself (e.g. a stream version out of sequence): Open fails with DataLoss naming
  // the file and offset.
  using RecordFn = std::function<absl::Status(const RecordView&)>;

  static absl::StatusOr<std::unique_ptr<SegmentLog>> Open(const Options& options,
                                                          const RecordFn& on_record,
                                                          RecoveryResult* result);
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  // Appends framed records whose first position is `first_position` with one pwrite (retried on
  // short writes). Starts a new segment first when the current one is non-empty and would grow
  // past segment_bytes; a batch is never split across segments. On error nothing is undone:
  // the caller decides (UndoLastAppend).
  absl::Status Append(std::string_view bytes, uint64_t first_position);
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
};

}  // namespace metrics::store::internal
