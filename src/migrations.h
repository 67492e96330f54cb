/*
 * migrations.h - the schema migrations embedded at build time from
 * schema/NNNN_*.sql (see cmake/embed_schema_run.cmake).  The array is in
 * version order and ends with an entry whose version is 0.
 */
#ifndef POBOX_MIGRATIONS_H
#define POBOX_MIGRATIONS_H

struct pobox_migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct pobox_migration pobox_migrations[];

#endif
