/*
 * devdax-read DEVICE ALIGN OFFSET LENGTH: prints LENGTH bytes of a device DAX at OFFSET as hex,
 * read through its own mmap (a second process, no pmem2 and no libpmem2), for the guest tests.
 * OFFSET must be a multiple of ALIGN, the device's alignment; the mapping is rounded up to
 * whole alignment units (device DAX refuses anything smaller).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: devdax-read DEVICE ALIGN OFFSET LENGTH\n");
		return 2;
	}
	size_t align = strtoull(argv[2], NULL, 0);
	off_t offset = strtoull(argv[3], NULL, 0);
	size_t length = strtoull(argv[4], NULL, 0);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	size_t span = (length + align - 1) / align * align;
	unsigned char *p = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, offset);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < length; i++)
		printf("%02x", p[i]);
	printf("\n");
	return 0;
}
