#include "exposition/format_float.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace metrics::exposition {

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  // Shortest round-trip digits in scientific form, e.g. "-1.2345e-07", then re-laid out like Go's
  // 'g'.
  char sci[32];
  auto r = std::to_chars(sci, sci + sizeof(sci), v, std::chars_format::scientific);
  const char* p = sci;
  const char* end = r.ptr;
  if (*p == '-') {
    out->push_back('-');
    ++p;
  }
  char digits[20];
  int nd = 0;
  for (; p < end && *p != 'e'; ++p) {
    if (*p != '.') digits[nd++] = *p;
  }
  int exp = 0;
  std::from_chars(p + 1 + (p[1] == '+'), end, exp);
  if (nd == 1 && digits[0] == '0') exp = 0;  // zero: "0", and "-0" keeps its sign like Go

  if (exp < -4 || exp >= 6) {
    out->push_back(digits[0]);
    if (nd > 1) {
      out->push_back('.');
      out->append(digits + 1, nd - 1);
    }
    out->push_back('e');
    out->push_back(exp < 0 ? '-' : '+');
    int a = exp < 0 ? -exp : exp;
    if (a < 10) out->push_back('0');
    AppendUint(out, static_cast<uint64_t>(a));
    return;
  }
  if (exp < 0) {  // 0.000ddd
    out->append("0.");
    out->append(static_cast<size_t>(-exp - 1), '0');
    out->append(digits, nd);
    return;
  }
  // exp in [0, 6): integer part has exp + 1 digits.
  int int_digits = exp + 1;
  if (nd <= int_digits) {
    out->append(digits, nd);
    out->append(static_cast<size_t>(int_digits - nd), '0');
  } else {
    out->append(digits, int_digits);
    out->push_back('.');
    out->append(digits + int_digits, nd - int_digits);
  }
}

void AppendOpenMetricsFloat(std::string* out, double v) {
  size_t start = out->size();
  AppendDouble(out, v);
  if (!std::isfinite(v)) return;
  std::string_view s(out->data() + start, out->size() - start);
  if (s.find_first_of(".e") == std::string_view::npos) out->append(".0");
}

}  // namespace metrics::exposition
