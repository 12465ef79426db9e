// The on-disk record: how one event is framed in a segment file. All integers little-endian.
//
// clang-format off
//   frame  : u32 body_length | u32 crc32c(body) | body
//   body   : u64 position_field | i64 timestamp_ns | u64 stream_version
//            | u16 stream_field | stream | u16 type_field | type | [16 bytes id]
//            | u32 payload_length | payload
//   position_field: bit 63  sync mark: every byte of this segment before this record was durable
//                           (fdatasynced) when the record was written (the durable watermark)
//                   bits 0-62 position
//   stream_field: bit 15  framed: the record carries a request boundary (set by every writer
//                         since request framing; records without it each stand alone)
//                 bit 14  ends_request: the last record of its Append() request
//                 bits 0-13 stream length (1 .. kMaxStreamBytes)
//   type_field:   bit 15  the event has an id: 16 bytes follow the type
//                 bits 0-14 type length (1 .. kMaxTypeBytes)
// clang-format on
//
// A body is at least kMinBodyBytes (non-empty stream and type) and its three lengths must add up to
// body_length exactly, so a zero-filled or random tail is never mistaken for a record. A request's
// records are consecutive and written with one pwrite; recovery keeps a request only when its
// ending record made it to disk (store/internal/segment_log.h), so an Append is all or nothing.
// The sync mark costs no byte: the log sets it on the first record of a write that starts exactly
// where the last successful fdatasync ended (every batch under kEveryBatch, the first after each
// sync under kInterval), and recovery reads a bad record with a marked record after it as
// corruption of durable data, one without as a torn tail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace metrics::store::internal {

inline constexpr size_t kFrameHeaderBytes = 8;                // length + CRC
inline constexpr size_t kFixedBodyBytes = 32;                 // 3 x 8 + 2 + 2 + 4
inline constexpr size_t kMinBodyBytes = kFixedBodyBytes + 2;  // one-byte stream and type
inline constexpr size_t kMinFrameBytes = kFrameHeaderBytes + kMinBodyBytes;
// Format limit, independent of StoreOptions (so a log written with larger limits still reads).
inline constexpr size_t kMaxPayloadBytes = size_t{64} << 20;
inline constexpr size_t kMaxStreamBytes = 16383;  // 14 bits; the top two are the request flags
inline constexpr size_t kMaxTypeBytes = 32767;    // 15 bits; the top one says an id follows
inline constexpr size_t kIdBytes = 16;            // an event id: a UUID's 16 bytes
inline constexpr size_t kMaxBodyBytes =
    kFixedBodyBytes + kMaxStreamBytes + kMaxTypeBytes + kIdBytes + kMaxPayloadBytes;

// id: 0 (no id) or kIdBytes.
inline constexpr size_t FramedSize(size_t stream, size_t type, size_t payload, size_t id = 0) {
  return kFrameHeaderBytes + kFixedBodyBytes + stream + type + id + payload;
}

// A decoded record; the views point into the buffer it was parsed from.
struct RecordView {
  uint64_t position = 0;
  int64_t timestamp_ns = 0;
  uint64_t stream_version = 0;
  std::string_view stream;
  std::string_view type;
  std::string_view payload;
  std::string_view id;  // empty, or kIdBytes bytes
  // False for every record of a multi-event request but its last. Parsed records written before
  // request framing read as true: each was its own request.
  bool ends_request = true;
  // The sync mark (position_field bit 63): everything before this record in its segment was durable
  // when it was written.
  bool sync_mark = false;
};

inline constexpr uint64_t kMaxPosition = (uint64_t{1} << 63) - 1;

// Sets the sync mark of the frame at `frame` (a whole, valid frame) and rewrites its CRC.
void SetSyncMark(char* frame);

// Appends one framed record to *out. Lengths must be within the format limits (the store checks).
void AppendRecord(std::string* out, const RecordView& r);

enum class ParseStatus {
  kOk,
  kIncomplete,  // the frame runs past the end of the data (a torn write)
  kBadLength,   // body length out of range
  kBadCrc,      // checksum mismatch
  kBadBody,     // the CRC matches but the field lengths do not add up
};
const char* ParseStatusName(ParseStatus s);

// Parses the frame at the start of data[0, n). On kOk fills *out and *frame_bytes.
ParseStatus ParseRecord(const char* data, size_t n, RecordView* out, size_t* frame_bytes);

}  // namespace metrics::store::internal
