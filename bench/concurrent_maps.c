/*
 * Debian's libpmem2 under the concurrent-mapping scenario of issue 8: THREADS threads, each with
 * its own file, wait at a barrier, map the file (PAGE granularity, shared), copy a record naming
 * owner and round to offset 0 with the memcpy function, persist it and unmap. After every round
 * the main thread reads each file back with pread and classifies it, printing one JSON line per
 * round (flushed, so a driver knows how far a run got if libpmem2 aborts the process):
 *   {"round":12,"failedMaps":0,"failureCodes":{"-17":1},"missing":0,"foreign":0}
 * failedMaps: pmem2_map_new failed (the thread writes nothing that round); missing: a mapped
 * and written file lacks its own record; foreign: a file holds another thread's record.
 * Records are "owner=<thread> round=<round>" padded with spaces to 32 bytes, in files c<thread>.bin.
 *
 * Build: gcc -O2 -pthread -o concurrent_maps bench/concurrent_maps.c $(pkg-config --cflags --libs libpmem2)
 * Usage: concurrent_maps --dir DIR [--threads N] [--rounds N] [--first-round N] [--size BYTES]
 * scripts/concurrent-maps.mjs builds it, restarts it after an abort and prints the totals next
 * to pmem2's.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libpmem2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD 32
#define MAX_THREADS 64
#define MAX_CODES 16

struct worker {
	int owner, round, fd;
	pthread_barrier_t *barrier;
	int result; /* 0 or pmem2_map_new's error */
};

static void record(char *out, int owner, int round)
{
	memset(out, ' ', RECORD);
	int n = snprintf(out, RECORD, "owner=%d round=%d", owner, round);
	out[n] = ' ';
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct pmem2_source *src;
	struct pmem2_config *cfg;
	struct pmem2_map *map;
	if (pmem2_source_from_fd(&src, w->fd) || pmem2_config_new(&cfg)) {
		pmem2_perror("source/config");
		exit(1);
	}
	pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	pthread_barrier_wait(w->barrier);
	w->result = pmem2_map_new(&map, cfg, src);
	if (w->result == 0) {
		char rec[RECORD];
		record(rec, w->owner, w->round);
		char *addr = pmem2_map_get_address(map);
		pmem2_get_memcpy_fn(map)(addr, rec, RECORD, 0);
		pmem2_get_persist_fn(map)(addr, RECORD);
		if (pmem2_map_delete(&map)) {
			pmem2_perror("pmem2_map_delete");
			exit(1);
		}
	}
	pmem2_config_delete(&cfg);
	pmem2_source_delete(&src);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int threads = 8, rounds = 3000, first = 0;
	long size = 64 * 1024;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--first-round"))
			first = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = atol(argv[i + 1]);
	}
	if (!dir || threads < 1 || threads > MAX_THREADS || rounds < 1 || first < 0 || size < RECORD) {
		fprintf(stderr,
			"usage: concurrent_maps --dir DIR [--threads 1..%d] [--rounds N] [--first-round N] [--size BYTES]\n",
			MAX_THREADS);
		return 2;
	}
	int fds[MAX_THREADS];
	for (int t = 0; t < threads; t++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/c%d.bin", dir, t);
		fds[t] = open(path, O_RDWR | O_CREAT, 0644);
		if (fds[t] < 0 || ftruncate(fds[t], size)) {
			perror(path);
			return 1;
		}
	}
	pthread_barrier_t barrier;
	struct worker w[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	for (int round = first; round < rounds; round++) {
		int failed = 0, missing = 0, foreign = 0;
		int codes[MAX_CODES], counts[MAX_CODES], ncodes = 0;
		/* Cleared first, so that whatever a file holds after the round was written in it. */
		static const char zeros[RECORD];
		for (int t = 0; t < threads; t++) {
			if (pwrite(fds[t], zeros, RECORD, 0) != RECORD) {
				perror("pwrite");
				return 1;
			}
		}
		pthread_barrier_init(&barrier, NULL, threads);
		for (int t = 0; t < threads; t++) {
			w[t] = (struct worker){ .owner = t, .round = round, .fd = fds[t], .barrier = &barrier };
			if (pthread_create(&tid[t], NULL, run, &w[t])) {
				perror("pthread_create");
				return 1;
			}
		}
		for (int t = 0; t < threads; t++)
			pthread_join(tid[t], NULL);
		pthread_barrier_destroy(&barrier);
		for (int t = 0; t < threads; t++) {
			char got[RECORD + 1] = { 0 }, want[RECORD];
			if (pread(fds[t], got, RECORD, 0) != RECORD) {
				perror("pread");
				return 1;
			}
			int owner, r;
			if (sscanf(got, "owner=%d round=%d", &owner, &r) == 2 && owner != t)
				foreign++;
			if (w[t].result != 0) {
				failed++;
				int k = 0;
				while (k < ncodes && codes[k] != w[t].result)
					k++;
				if (k == ncodes && ncodes < MAX_CODES) {
					codes[ncodes] = w[t].result;
					counts[ncodes++] = 0;
				}
				if (k < ncodes)
					counts[k]++;
				continue;
			}
			record(want, t, round);
			if (memcmp(got, want, RECORD))
				missing++;
		}
		printf("{\"round\":%d,\"failedMaps\":%d,\"failureCodes\":{", round, failed);
		for (int k = 0; k < ncodes; k++)
			printf("%s\"%d\":%d", k ? "," : "", codes[k], counts[k]);
		printf("},\"missing\":%d,\"foreign\":%d}\n", missing, foreign);
		fflush(stdout);
	}
	for (int t = 0; t < threads; t++)
		close(fds[t]);
	return 0;
}
