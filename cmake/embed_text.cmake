# cmake -DIN=<text file> -DOUT=<.cc> -DSYMBOL=<name> -DNAMESPACE=<ns> -P embed_text.cmake
# Writes a translation unit defining `std::string_view <ns>::<SYMBOL>()` that returns the file's
# bytes, as a raw string literal (the file must not contain the delimiter).
cmake_policy(SET CMP0054 NEW)
file(READ "${IN}" text)
set(delim "EMBED_TEXT_9f2c")
string(FIND "${text}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter ${delim}")
endif()
file(WRITE "${OUT}.tmp"
  "// Generated from ${IN} by cmake/embed_text.cmake; do not edit.\n"
  "#include <string_view>\n\n"
  "namespace ${NAMESPACE} {\n"
  "std::string_view ${SYMBOL}() {\n"
  "  static constexpr char kText[] = R\"${delim}(${text})${delim}\";\n"
  "  return std::string_view(kText, sizeof(kText) - 1);\n"
  "}\n"
  "}  // namespace ${NAMESPACE}\n")
# Only replace when changed, so an unchanged page does not recompile.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
