# metrics_headers_alone(<target> <headers relative to the install's include dir> LINK <targets>):
# an object library with one translation unit per header, which includes it twice (its include
# guard) and nothing else, so that every header must compile on its own.
function(metrics_headers_alone target)
  cmake_parse_arguments(ARG "" "" "HEADERS;LINK" ${ARGN})
  foreach(h ${ARG_HEADERS})
    string(MAKE_C_IDENTIFIER ${h} id)
    file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/alone/${id}.cc
         CONTENT "#include \"${h}\"\n#include \"${h}\"\n")
    list(APPEND sources ${CMAKE_CURRENT_BINARY_DIR}/alone/${id}.cc)
  endforeach()
  add_library(${target} OBJECT ${sources})
  target_link_libraries(${target} PRIVATE ${ARG_LINK})
endfunction()
