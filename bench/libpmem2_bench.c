/*
 * libpmem2 (Debian libpmem2-dev) timed exactly as crates/pmem2/benches/ops.rs times pmem2:
 * the same file, rows, batch sizes, interleaving and medians. Prints JSON lines
 *   {"impl":"c","row":"persist 64B CL","median_ns":...}
 *
 * Build: gcc -O2 -o libpmem2_bench bench/libpmem2_bench.c -lpmem2
 * Usage: libpmem2_bench --file PATH [--reps N] [--quick]
 * Run both with: node bench/run.mjs
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libpmem2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define MAX_ROWS 32

struct row {
	const char *name;
	size_t iters, every;
	void (*run)(struct row *, size_t);
	size_t off, len;
	unsigned flags;
	double *samples;
	size_t nsamples;
};

static int Fd;
static struct pmem2_source *Src;
static struct pmem2_map *Cl, *Page;
static char *ClBase, *PageBase;
static pmem2_persist_fn ClPersist, PagePersist;
static pmem2_memcpy_fn ClMemcpy;
static pmem2_memset_fn ClMemset;
static unsigned char *SrcBuf;

static void die(const char *what)
{
	pmem2_perror("%s", what);
	exit(1);
}

static struct pmem2_map *map(const char *force)
{
	if (force)
		setenv("PMEM2_FORCE_GRANULARITY", force, 1);
	else
		unsetenv("PMEM2_FORCE_GRANULARITY");
	struct pmem2_config *cfg;
	struct pmem2_map *m;
	if (pmem2_config_new(&cfg))
		die("config");
	pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (pmem2_map_new(&m, cfg, Src))
		die("map");
	pmem2_config_delete(&cfg);
	unsetenv("PMEM2_FORCE_GRANULARITY");
	return m;
}

static void run_map_unmap(struct row *r, size_t i)
{
	(void)r;
	(void)i;
	struct pmem2_config *cfg;
	struct pmem2_map *m;
	if (pmem2_config_new(&cfg))
		die("config");
	pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (pmem2_map_new(&m, cfg, Src))
		die("map");
	pmem2_map_delete(&m);
	pmem2_config_delete(&cfg);
}

static void run_persist_cl(struct row *r, size_t i)
{
	memset(ClBase + r->off, (int)i, r->len);
	ClPersist(ClBase + r->off, r->len);
}

static void run_persist_page(struct row *r, size_t i)
{
	memset(PageBase + r->off, (int)i, r->len);
	PagePersist(PageBase + r->off, r->len);
}

static void run_memcpy(struct row *r, size_t i)
{
	(void)i;
	ClMemcpy(ClBase + r->off, SrcBuf, r->len, r->flags);
}

static void run_memset(struct row *r, size_t i)
{
	ClMemset(ClBase + r->off, (int)i, r->len, r->flags);
}

static void run_plain_memset(struct row *r, size_t i)
{
	memset(ClBase + r->off, (int)i, r->len);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	size_t reps = 200;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--file") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--quick"))
			reps = 20;
	}
	if (!path) {
		fprintf(stderr, "usage: %s --file PATH [--reps N]\n", argv[0]);
		return 2;
	}
	Fd = open(path, O_RDWR | O_CREAT, 0644);
	if (Fd < 0 || ftruncate(Fd, 16 * MIB)) {
		perror(path);
		return 1;
	}
	if (pmem2_source_from_fd(&Src, Fd))
		die("source");
	Cl = map("CACHE_LINE");
	Page = map(NULL);
	if (pmem2_map_get_store_granularity(Cl) != PMEM2_GRANULARITY_CACHE_LINE ||
	    pmem2_map_get_store_granularity(Page) != PMEM2_GRANULARITY_PAGE) {
		fprintf(stderr, "unexpected granularity\n");
		return 1;
	}
	ClBase = pmem2_map_get_address(Cl);
	PageBase = pmem2_map_get_address(Page);
	ClPersist = pmem2_get_persist_fn(Cl);
	PagePersist = pmem2_get_persist_fn(Page);
	ClMemcpy = pmem2_get_memcpy_fn(Cl);
	ClMemset = pmem2_get_memset_fn(Cl);
	SrcBuf = aligned_alloc(64, MIB);
	for (size_t i = 0; i < MIB; i++)
		SrcBuf[i] = (unsigned char)i;

	struct row rows[MAX_ROWS];
	size_t n = 0;
#define ROW(nm, it, ev, fn, o, l, fl)                                          \
	rows[n++] = (struct row){ .name = nm, .iters = it, .every = ev,        \
		.run = fn, .off = o, .len = l, .flags = fl }
	ROW("map+unmap 16MiB", 1, 1, run_map_unmap, 0, 0, 0);
	ROW("persist 64B CL", 200, 1, run_persist_cl, 8 * MIB, 64, 0);
	ROW("persist 4KiB CL", 50, 1, run_persist_cl, 8 * MIB, 4096, 0);
	ROW("persist 64KiB CL", 5, 1, run_persist_cl, 8 * MIB, 65536, 0);
	ROW("persist 4KiB PAGE", 1, 4, run_persist_page, 12 * MIB, 4096, 0);
	const char *sizes[] = { "256B", "4KiB", "1MiB" };
	size_t lens[] = { 256, 4096, MIB }, iters[] = { 200, 50, 1 };
	const char *fnames[] = { "flags=0", "NT", "T" };
	unsigned fl[] = { 0, PMEM2_F_MEM_NONTEMPORAL, PMEM2_F_MEM_TEMPORAL };
	static char names[9][64];
	for (int s = 0; s < 3; s++)
		for (int f = 0; f < 3; f++) {
			char *nm = names[s * 3 + f];
			snprintf(nm, 64, "memcpy %s %s", sizes[s], fnames[f]);
			ROW(nm, iters[s], 1, run_memcpy, 2 * MIB, lens[s], fl[f]);
		}
	ROW("memset 4KiB", 50, 1, run_memset, 4 * MIB, 4096, 0);
	ROW("plain memset 1MiB", 1, 1, run_plain_memset, 4 * MIB, MIB, 0);

	for (size_t r = 0; r < n; r++) {
		rows[r].samples = calloc(reps, sizeof(double));
		for (size_t i = 0; i < rows[r].iters; i++)
			rows[r].run(&rows[r], i);
	}
	for (size_t round = 0; round < reps; round++)
		for (size_t r = 0; r < n; r++) {
			struct row *row = &rows[r];
			if (round % row->every)
				continue;
			double t0 = now_ns();
			for (size_t i = 0; i < row->iters; i++)
				row->run(row, i);
			row->samples[row->nsamples++] =
				(now_ns() - t0) / (double)row->iters;
		}
	for (size_t r = 0; r < n; r++) {
		qsort(rows[r].samples, rows[r].nsamples, sizeof(double), cmp_double);
		printf("{\"impl\":\"c\",\"row\":\"%s\",\"median_ns\":%.1f,\"samples\":%zu}\n",
			rows[r].name, rows[r].samples[rows[r].nsamples / 2],
			rows[r].nsamples);
	}
	pmem2_map_delete(&Cl);
	pmem2_map_delete(&Page);
	pmem2_source_delete(&Src);
	close(Fd);
	return 0;
}
