# Run as a script (cmake -P): writes OUT, a C file holding every migration in
# SCHEMA_DIR as { version, name, sql }, in version order.  Migration numbers
# must be 1, 2, 3, ... without gaps: a gap is a build error, not a surprise at
# run time.  ARRAY names the array (default pobox_migrations).
if(NOT ARRAY)
  set(ARRAY pobox_migrations)
endif()
file(GLOB sql_files "${SCHEMA_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT sql_files)
set(body "")
set(expect 1)
foreach(f IN LISTS sql_files)
  get_filename_component(name "${f}" NAME)
  string(SUBSTRING "${name}" 0 4 num)
  math(EXPR num "${num} + 0")
  if(NOT num EQUAL expect)
    message(FATAL_ERROR "schema: ${name}: expected migration number ${expect}")
  endif()
  math(EXPR expect "${expect} + 1")
  file(READ "${f}" sql)
  # Emit as a hex byte array: no escaping rules to get wrong.
  string(HEX "${sql}" hex)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char m${num}[] = {${hex}0};\n")
  list(APPEND entries "{${num}, \"${name}\", m${num}}")
endforeach()
list(JOIN entries ",\n    " joined)
file(WRITE "${OUT}.tmp" "/* Generated from the schema directory by cmake/embed_schema_run.cmake. Do not edit. */\n#include \"migrations.h\"\n${body}\nconst struct pobox_migration ${ARRAY}[] = {\n    ${joined},\n    {0, 0, 0}\n};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
