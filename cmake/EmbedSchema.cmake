# Embeds schema/NNNN_*.sql into a generated C file at build time, so the
# binary carries every migration it knows and needs no files at run time.
#
# pobox_embed_schema(OUT_VAR) sets OUT_VAR to the generated source file; the
# file is regenerated whenever a migration changes or a new one is added
# (CONFIGURE_DEPENDS re-globs on every build).

set(POBOX_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/embed_schema_run.cmake")

function(pobox_embed_schema out_var)
  pobox_embed_sql(out "${PROJECT_SOURCE_DIR}/schema" pobox_migrations schema_embedded.c)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# pobox_embed_sql(OUT_VAR DIR ARRAY FILE): the same for any directory of
# NNNN_*.sql files, as `const struct pobox_migration ARRAY[]` in FILE (in
# the current binary dir).
function(pobox_embed_sql out_var dir array file)
  file(GLOB sql_files CONFIGURE_DEPENDS "${dir}/[0-9][0-9][0-9][0-9]_*.sql")
  list(SORT sql_files)
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${file}")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DSCHEMA_DIR=${dir} -DARRAY=${array}
            -P "${POBOX_EMBED_SCRIPT}"
    DEPENDS ${sql_files} "${POBOX_EMBED_SCRIPT}"
    COMMENT "Embedding ${array}"
    VERBATIM)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
