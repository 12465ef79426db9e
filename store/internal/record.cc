#include "store/internal/record.h"

#include <cstring>

#include "store/internal/crc32c.h"

namespace metrics::store::internal {
namespace {

constexpr uint16_t kFramedBit = 1u << 15;
constexpr uint16_t kEndsRequestBit = 1u << 14;
constexpr uint16_t kStreamLengthMask = kEndsRequestBit - 1;
constexpr uint16_t kHasIdBit = 1u << 15;              // in the type field
constexpr uint64_t kSyncMarkBit = uint64_t{1} << 63;  // in the position field

template <typename T>
char* Put(char* p, T v) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  for (size_t i = 0; i < sizeof(T); ++i) *p++ = static_cast<char>(u >> (8 * i));
  return p;
}

template <typename T>
T Get(const char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    u |= static_cast<U>(static_cast<unsigned char>(p[i])) << (8 * i);
  return static_cast<T>(u);
}

char* PutBytes(char* p, std::string_view s) {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

}  // namespace

void AppendRecord(std::string* out, const RecordView& r) {
  const size_t body =
      kFixedBodyBytes + r.stream.size() + r.type.size() + r.id.size() + r.payload.size();
  const size_t start = out->size();
  out->resize(start + kFrameHeaderBytes + body);
  char* const frame = out->data() + start;
  char* p = frame + kFrameHeaderBytes;
  p = Put<uint64_t>(p, r.position | (r.sync_mark ? kSyncMarkBit : 0));
  p = Put<int64_t>(p, r.timestamp_ns);
  p = Put<uint64_t>(p, r.stream_version);
  p = Put<uint16_t>(p, static_cast<uint16_t>(r.stream.size() | kFramedBit |
                                             (r.ends_request ? kEndsRequestBit : 0)));
  p = PutBytes(p, r.stream);
  p = Put<uint16_t>(p, static_cast<uint16_t>(r.type.size() | (r.id.empty() ? 0 : kHasIdBit)));
  p = PutBytes(p, r.type);
  p = PutBytes(p, r.id);
  p = Put<uint32_t>(p, static_cast<uint32_t>(r.payload.size()));
  PutBytes(p, r.payload);
  Put<uint32_t>(frame, static_cast<uint32_t>(body));
  Put<uint32_t>(frame + 4, Crc32c(frame + kFrameHeaderBytes, body));
}

void SetSyncMark(char* frame) {
  const uint32_t body = Get<uint32_t>(frame);
  char* const b = frame + kFrameHeaderBytes;
  Put<uint64_t>(b, Get<uint64_t>(b) | kSyncMarkBit);
  Put<uint32_t>(frame + 4, Crc32c(b, body));
}

const char* ParseStatusName(ParseStatus s) {
  switch (s) {
    case ParseStatus::kOk:
      return "ok";
    case ParseStatus::kIncomplete:
      return "incomplete record";
    case ParseStatus::kBadLength:
      return "bad record length";
    case ParseStatus::kBadCrc:
      return "CRC mismatch";
    case ParseStatus::kBadBody:
      return "inconsistent record fields";
  }
  return "?";
}

ParseStatus ParseRecord(const char* data, size_t n, RecordView* out, size_t* frame_bytes) {
  if (n < kFrameHeaderBytes) return ParseStatus::kIncomplete;
  const uint32_t body = Get<uint32_t>(data);
  if (body < kMinBodyBytes || body > kMaxBodyBytes) return ParseStatus::kBadLength;
  if (n - kFrameHeaderBytes < body) return ParseStatus::kIncomplete;
  const char* b = data + kFrameHeaderBytes;
  if (Get<uint32_t>(data + 4) != Crc32c(b, body)) return ParseStatus::kBadCrc;

  const char* const end = b + body;
  RecordView r;
  const uint64_t position_field = Get<uint64_t>(b);
  r.position = position_field & ~kSyncMarkBit;
  r.sync_mark = (position_field & kSyncMarkBit) != 0;
  r.timestamp_ns = Get<int64_t>(b + 8);
  r.stream_version = Get<uint64_t>(b + 16);
  const char* p = b + 24;
  const uint16_t stream_field = Get<uint16_t>(p);
  const size_t stream_len = stream_field & kStreamLengthMask;
  r.ends_request = (stream_field & kFramedBit) == 0 || (stream_field & kEndsRequestBit) != 0;
  p += 2;
  if (stream_len == 0 || static_cast<size_t>(end - p) < stream_len + 2)
    return ParseStatus::kBadBody;
  r.stream = std::string_view(p, stream_len);
  p += stream_len;
  const uint16_t type_field = Get<uint16_t>(p);
  const size_t type_len = type_field & (kHasIdBit - 1);
  const size_t id_len = (type_field & kHasIdBit) != 0 ? kIdBytes : 0;
  p += 2;
  if (type_len == 0 || static_cast<size_t>(end - p) < type_len + id_len + 4) {
    return ParseStatus::kBadBody;
  }
  r.type = std::string_view(p, type_len);
  p += type_len;
  r.id = std::string_view(p, id_len);
  p += id_len;
  const size_t payload_len = Get<uint32_t>(p);
  p += 4;
  if (static_cast<size_t>(end - p) != payload_len) return ParseStatus::kBadBody;
  r.payload = std::string_view(p, payload_len);
  *out = r;
  *frame_bytes = kFrameHeaderBytes + body;
  return ParseStatus::kOk;
}

}  // namespace metrics::store::internal
