# Embeds schema/NNNN_*.sql into a generated C file at build time, so the
# binary carries every migration it knows and needs no files at run time.
#
# pobox_embed_schema(OUT_VAR) sets OUT_VAR to the generated source file; the
# file is regenerated whenever a migration changes or a new one is added
# (CONFIGURE_DEPENDS re-globs on every build).

set(POBOX_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/embed_schema_run.cmake")

function(pobox_embed_schema out_var)
  file(GLOB sql_files CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/schema/[0-9][0-9][0-9][0-9]_*.sql")
  list(SORT sql_files)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/schema_embedded.c")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DSCHEMA_DIR=${PROJECT_SOURCE_DIR}/schema
            -P "${POBOX_EMBED_SCRIPT}"
    DEPENDS ${sql_files} "${POBOX_EMBED_SCRIPT}"
    COMMENT "Embedding schema migrations"
    VERBATIM)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
