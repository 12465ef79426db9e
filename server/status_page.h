// The status page GET / answers with: server/status_page.html, compiled into the binary at build
// time (cmake/embed_text.cmake), so the server needs no file next to it. Immutable; thread-safe.
#pragma once

#include <string_view>

namespace eventstore {

std::string_view StatusPageHtml();

}  // namespace eventstore
