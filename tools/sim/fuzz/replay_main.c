/*
 * replay_main -- run the fuzz entry point over files, without libFuzzer.
 *
 * Usage: pobox-sim-parse-replay FILE|DIR...   Each file is one input; each
 * is also replayed under every target selector (first byte 0..3), so a
 * corpus of raw hostile bodies exercises every parser.  Built with the
 * project's sanitizers, a crash or leak fails the ctest that runs it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int sel, rc = -1;

	if (!f)
		goto out;
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc((size_t)len + 1);
	if (!buf || fread(buf + 1, 1, (size_t)len, f) != (size_t)len)
		goto out;
	for (sel = 0; sel < 4; sel++) {
		buf[0] = (uint8_t)sel;
		LLVMFuzzerTestOneInput(buf, (size_t)len + 1);
	}
	/* And as-is, as libFuzzer saw it. */
	LLVMFuzzerTestOneInput(buf + 1, (size_t)len);
	rc = 0;
out:
	if (f)
		fclose(f);
	free(buf);
	if (rc)
		fprintf(stderr, "cannot read %s\n", path);
	return rc;
}

int main(int argc, char **argv)
{
	int i, failed = 0, count = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *e;

		if (stat(argv[i], &st)) {
			fprintf(stderr, "cannot stat %s\n", argv[i]);
			failed = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= run_file(argv[i]) != 0;
			count++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			failed = 1;
			continue;
		}
		while ((e = readdir(d))) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			failed |= run_file(path) != 0;
			count++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", count);
	return failed || count == 0;
}
