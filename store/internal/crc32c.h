// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every log record. Software,
// table-driven (slicing-by-8: eight 256-entry tables built at compile time), no CPU feature needed.
//
//   Crc32c("123456789") == 0xE3069283   (the standard check value)
//   Crc32c(ab) == Crc32cExtend(Crc32c(a), b)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace metrics::store::internal {

// Continues a CRC32C: `crc` is the CRC of the bytes before `data` (0 for none).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }
inline uint32_t Crc32c(std::string_view s) { return Crc32cExtend(0, s.data(), s.size()); }

}  // namespace metrics::store::internal
