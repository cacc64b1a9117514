/*
 * deep-flush DEVICE ALIGN: libpmem2's pmem2_deep_flush on the first page of a device DAX,
 * mapped ALIGN bytes long (required granularity PAGE), for the guest tests to compare pmem2
 * with. Prints "map=RC deep_flush=RC" (libpmem2 return codes); exits 0 when both are 0.
 */
#include <fcntl.h>
#include <libpmem2.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: deep-flush DEVICE ALIGN\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	struct pmem2_source *src;
	struct pmem2_config *cfg;
	struct pmem2_map *map = NULL;
	if (pmem2_source_from_fd(&src, fd) || pmem2_config_new(&cfg)) {
		pmem2_perror("source/config");
		return 1;
	}
	pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	pmem2_config_set_length(cfg, strtoull(argv[2], NULL, 0));
	int map_rc = pmem2_map_new(&map, cfg, src);
	int flush_rc = map_rc ? 1 : pmem2_deep_flush(map, pmem2_map_get_address(map), 4096);
	printf("map=%d deep_flush=%d\n", map_rc, flush_rc);
	return map_rc || flush_rc;
}
