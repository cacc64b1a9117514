/*
 * oracle: runs mapping scenarios through the system's libpmem2 and prints what it returned,
 * so pmem2 (the Rust crate) can be compared with it line by line.
 *
 * Input, one scenario per line on stdin (blank lines and lines starting with '#' are skipped):
 *
 *     ID SOURCE OFFSET LENGTH GRANULARITY SHARING PROTECTION
 *
 *   ID           any word without spaces, echoed back
 *   SOURCE       anon:SIZE            pmem2_source_from_anon(SIZE)
 *                fd:MODE:PATH         pmem2_source_from_fd(fd) where fd comes from MODE:
 *                  rdwr rdonly wronly   open(PATH, O_RDWR / O_RDONLY / O_WRONLY)
 *                  append               open(PATH, O_RDWR | O_APPEND)
 *                  nonblock             open(PATH, O_RDONLY | O_NONBLOCK)   (FIFOs)
 *                  path                 open(PATH, O_PATH)
 *                  socket               socket(AF_UNIX, SOCK_STREAM, 0)    (PATH ignored)
 *                  neg                  the fd -1
 *                  closed               open(PATH, O_RDWR), then close it before from_fd
 *                  closed_after         open(PATH, O_RDWR), from_fd, then close it
 *   OFFSET       decimal u64, passed to pmem2_config_set_offset
 *   LENGTH       decimal u64, passed to pmem2_config_set_length
 *   GRANULARITY  byte | cache_line | page | unset (unset: the setter is not called)
 *   SHARING      shared | private
 *   PROTECTION   letters from "rwx", or "none"
 *
 * Output, one line per scenario:
 *
 *     ID src=RC size=RC:VALUE align=RC:VALUE off=RC map=RC msize=VALUE gran=GRANULARITY
 *        addr=CLASS maps=PERMS sync=0|1 persist=MSYNCS
 *
 * RC is a libpmem2 return code (0, -errno or PMEM2_E_*). A field that was not reached is "-":
 * size and align are only asked for when the source was created, msize, gran and the fields
 * after them only when pmem2_map_new succeeded. "open" failing prints "src=open:-ERRNO".
 * PMEM2_FORCE_GRANULARITY in the environment is honoured by libpmem2 itself.
 *
 * What a successful mapping is, as the kernel shows it (libpmem2 has no getter for most of it):
 *
 *   addr     the address's alignment: 1g (reported only for mappings of 2 GiB or more, the
 *            only ones promised it), 2m, page or none
 *   maps     the permissions /proc/self/maps shows over [addr, addr + msize), one entry's
 *            "rw-s", several joined with ',', or "gap" if the range is not all mapped
 *   sync     1 if /proc/self/smaps shows VmFlags "sf" (MAP_SYNC was granted)
 *   persist  what pmem2_get_persist_fn's function did to [addr + P, addr + P + L) with
 *            P = min(100, msize - 1) and L = min(5000, msize - P): every msync it made, as
 *            "msync:START+LENGTH:FLAGS" relative to addr, joined with ','; "none" if it made
 *            none; "-" if not probed (a CACHE_LINE or BYTE mapping without read or write
 *            access, where libpmem2's flush would fault). Flushes and fences are invisible
 *            from here; the msyncs are observed by the msync() defined below.
 *
 * "oracle --constants" instead prints the header's error codes, protection bits and enum
 * values, one "NAME VALUE" per line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Every msync of this process, libpmem2's included, goes through this definition: the oracle
 * is linked with -rdynamic, so libpmem2's call binds to the executable's msync before libc's
 * (main checks that it does). It records the arguments while `recording` is set and makes
 * the system call itself.
 */
#define MAX_MSYNCS 64
static struct {
	uintptr_t addr;
	size_t len;
	int flags;
} msyncs[MAX_MSYNCS];
static int n_msyncs, recording;

int msync(void *addr, size_t len, int flags)
{
	if (recording && n_msyncs < MAX_MSYNCS) {
		msyncs[n_msyncs].addr = (uintptr_t)addr;
		msyncs[n_msyncs].len = len;
		msyncs[n_msyncs].flags = flags;
		n_msyncs++;
	}
	return (int)syscall(SYS_msync, addr, len, flags);
}

static const char *addr_class(uintptr_t a, size_t size)
{
	/* 1 GiB only where it is promised (2 GiB and longer): below that a 1 GiB aligned
	 * address is luck, on either side. */
	if (a % (1UL << 30) == 0 && size >= (2UL << 30))
		return "1g";
	if (a % (2UL << 20) == 0)
		return "2m";
	if (a % (uintptr_t)sysconf(_SC_PAGESIZE) == 0)
		return "page";
	return "none";
}

/* Prints " maps=PERMS" for [start, end) from /proc/self/maps (see the header comment). */
static void print_maps(uintptr_t start, uintptr_t end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], perms[8], out[256] = "";
	uintptr_t lo, hi, covered = start;
	int gap = 0;
	if (!f) {
		fprintf(stderr, "oracle: /proc/self/maps: %s\n", strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || hi <= start || lo >= end)
			continue;
		if (lo > covered)
			gap = 1;
		covered = hi;
		/* The same permissions as the entry before are not repeated. */
		const char *last = strrchr(out, ',');
		last = last ? last + 1 : out;
		if (strcmp(last, perms)) {
			if (*out)
				strcat(out, ",");
			strcat(out, perms);
		}
	}
	fclose(f);
	printf(" maps=%s", gap || covered < end || !*out ? "gap" : out);
}

/* 1 if the /proc/self/smaps entry that starts at `start` has VmFlags "sf" (MAP_SYNC). */
static int smaps_sync(uintptr_t start)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	uintptr_t lo, hi;
	int in = 0, sync = 0;
	if (!f) {
		fprintf(stderr, "oracle: /proc/self/smaps: %s\n", strerror(errno));
		exit(2);
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = lo == start;
		else if (in && !strncmp(line, "VmFlags:", 8))
			sync = strstr(line, " sf") != NULL;
	}
	fclose(f);
	return sync;
}

/* Prints the fields after gran= for a successful mapping (see the header comment). */
static void print_mapping(struct pmem2_map *map, enum pmem2_granularity gran, unsigned prot)
{
	uintptr_t addr = (uintptr_t)pmem2_map_get_address(map);
	size_t size = pmem2_map_get_size(map);
	printf(" addr=%s", addr_class(addr, size));
	print_maps(addr, addr + size);
	printf(" sync=%d", smaps_sync(addr));
	if (gran != PMEM2_GRANULARITY_PAGE && !(prot & (PMEM2_PROT_READ | PMEM2_PROT_WRITE))) {
		printf(" persist=-");
		return;
	}
	size_t p = size > 100 ? 100 : size - 1;
	size_t l = size - p < 5000 ? size - p : 5000;
	pmem2_persist_fn persist = pmem2_get_persist_fn(map);
	n_msyncs = 0;
	recording = 1;
	persist((char *)addr + p, l);
	recording = 0;
	printf(" persist=");
	if (!n_msyncs)
		printf("none");
	for (int i = 0; i < n_msyncs; i++)
		printf("%smsync:%lu+%zu:%d", i ? "," : "", (unsigned long)(msyncs[i].addr - addr),
		       msyncs[i].len, msyncs[i].flags);
}

static const char *gran_name(enum pmem2_granularity g)
{
	switch (g) {
	case PMEM2_GRANULARITY_BYTE:
		return "byte";
	case PMEM2_GRANULARITY_CACHE_LINE:
		return "cache_line";
	case PMEM2_GRANULARITY_PAGE:
		return "page";
	}
	return "?";
}

static int parse_gran(const char *s, enum pmem2_granularity *g)
{
	if (!strcmp(s, "byte"))
		*g = PMEM2_GRANULARITY_BYTE;
	else if (!strcmp(s, "cache_line"))
		*g = PMEM2_GRANULARITY_CACHE_LINE;
	else if (!strcmp(s, "page"))
		*g = PMEM2_GRANULARITY_PAGE;
	else if (!strcmp(s, "unset"))
		return 0;
	else
		return -1;
	return 1;
}

static int parse_prot(const char *s, unsigned *prot)
{
	*prot = PMEM2_PROT_NONE;
	if (!strcmp(s, "none"))
		return 0;
	for (; *s; s++) {
		if (*s == 'r')
			*prot |= PMEM2_PROT_READ;
		else if (*s == 'w')
			*prot |= PMEM2_PROT_WRITE;
		else if (*s == 'x')
			*prot |= PMEM2_PROT_EXEC;
		else
			return -1;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		return -1;
	*v = x;
	return 0;
}

/* Opens the fd for MODE; returns -2 (and sets *open_err) if opening failed. */
static int open_fd(const char *mode, const char *path, int *open_err)
{
	int fd = -2;
	if (!strcmp(mode, "rdwr") || !strcmp(mode, "closed") || !strcmp(mode, "closed_after"))
		fd = open(path, O_RDWR);
	else if (!strcmp(mode, "rdonly"))
		fd = open(path, O_RDONLY);
	else if (!strcmp(mode, "wronly"))
		fd = open(path, O_WRONLY);
	else if (!strcmp(mode, "append"))
		fd = open(path, O_RDWR | O_APPEND);
	else if (!strcmp(mode, "nonblock"))
		fd = open(path, O_RDONLY | O_NONBLOCK);
	else if (!strcmp(mode, "path"))
		fd = open(path, O_PATH);
	else if (!strcmp(mode, "socket"))
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
	else if (!strcmp(mode, "neg"))
		return -1;
	else {
		fprintf(stderr, "oracle: unknown fd mode '%s'\n", mode);
		exit(2);
	}
	if (fd < 0) {
		*open_err = errno;
		return -2;
	}
	if (!strcmp(mode, "closed"))
		close(fd);
	return fd;
}

static void run(char *line)
{
	char *id = strtok(line, " \t\n");
	if (!id || id[0] == '#')
		return;
	char *source = strtok(NULL, " \t\n");
	char *offset_s = strtok(NULL, " \t\n");
	char *length_s = strtok(NULL, " \t\n");
	char *gran_s = strtok(NULL, " \t\n");
	char *sharing_s = strtok(NULL, " \t\n");
	char *prot_s = strtok(NULL, " \t\n");
	uint64_t offset, length, anon_size = 0;
	enum pmem2_granularity gran = PMEM2_GRANULARITY_PAGE;
	unsigned prot;
	int gran_set;
	if (!prot_s || parse_u64(offset_s, &offset) || parse_u64(length_s, &length) ||
	    (gran_set = parse_gran(gran_s, &gran)) < 0 || parse_prot(prot_s, &prot) ||
	    (strcmp(sharing_s, "shared") && strcmp(sharing_s, "private"))) {
		fprintf(stderr, "oracle: malformed scenario '%s'\n", id);
		exit(2);
	}

	struct pmem2_source *src = NULL;
	int fd = -1, close_after = 0, rc;
	if (!strncmp(source, "anon:", 5)) {
		if (parse_u64(source + 5, &anon_size)) {
			fprintf(stderr, "oracle: bad anon size in '%s'\n", id);
			exit(2);
		}
		rc = pmem2_source_from_anon(&src, (size_t)anon_size);
	} else if (!strncmp(source, "fd:", 3)) {
		char *mode = source + 3;
		char *path = strchr(mode, ':');
		if (!path) {
			fprintf(stderr, "oracle: bad fd source in '%s'\n", id);
			exit(2);
		}
		*path++ = '\0';
		int open_err = 0;
		fd = open_fd(mode, path, &open_err);
		if (fd == -2) {
			printf("%s src=open:%d size=- align=- off=- map=- msize=- gran=- addr=- maps=- sync=- persist=-\n",
			       id, -open_err);
			return;
		}
		close_after = !strcmp(mode, "closed_after");
		rc = pmem2_source_from_fd(&src, fd);
		if (close_after)
			close(fd);
	} else {
		fprintf(stderr, "oracle: unknown source '%s' in '%s'\n", source, id);
		exit(2);
	}

	printf("%s src=%d", id, rc);
	if (rc != 0) {
		printf(" size=- align=- off=- map=- msize=- gran=- addr=- maps=- sync=- persist=-\n");
		goto out;
	}

	size_t size = 0, align = 0;
	rc = pmem2_source_size(src, &size);
	if (rc)
		printf(" size=%d:-", rc);
	else
		printf(" size=0:%zu", size);
	rc = pmem2_source_alignment(src, &align);
	if (rc)
		printf(" align=%d:-", rc);
	else
		printf(" align=0:%zu", align);

	struct pmem2_config *cfg;
	if (pmem2_config_new(&cfg)) {
		fprintf(stderr, "oracle: pmem2_config_new failed\n");
		exit(2);
	}
	printf(" off=%d", pmem2_config_set_offset(cfg, (size_t)offset));
	pmem2_config_set_length(cfg, (size_t)length);
	if (gran_set)
		pmem2_config_set_required_store_granularity(cfg, gran);
	pmem2_config_set_sharing(cfg, strcmp(sharing_s, "private") ? PMEM2_SHARED : PMEM2_PRIVATE);
	pmem2_config_set_protection(cfg, prot);

	struct pmem2_map *map = NULL;
	rc = pmem2_map_new(&map, cfg, src);
	printf(" map=%d", rc);
	if (rc == 0) {
		enum pmem2_granularity effective = pmem2_map_get_store_granularity(map);
		printf(" msize=%zu gran=%s", pmem2_map_get_size(map), gran_name(effective));
		print_mapping(map, effective, prot);
		printf("\n");
		if (pmem2_map_delete(&map)) {
			fprintf(stderr, "oracle: pmem2_map_delete failed\n");
			exit(2);
		}
	} else {
		printf(" msize=- gran=- addr=- maps=- sync=- persist=-\n");
	}
	pmem2_config_delete(&cfg);
out:
	pmem2_source_delete(&src);
	if (fd >= 0 && !close_after)
		close(fd);
	fflush(stdout);
}

/* "oracle --constants": every constant pmem2 mirrors, as "NAME VALUE" lines. */
static void print_constants(void)
{
#define C(name) printf("%s %lld\n", #name, (long long)(name))
	C(PMEM2_E_UNKNOWN);
	C(PMEM2_E_NOSUPP);
	C(PMEM2_E_FILE_HANDLE_NOT_SET);
	C(PMEM2_E_INVALID_FILE_HANDLE);
	C(PMEM2_E_INVALID_FILE_TYPE);
	C(PMEM2_E_MAP_RANGE);
	C(PMEM2_E_MAPPING_EXISTS);
	C(PMEM2_E_GRANULARITY_NOT_SET);
	C(PMEM2_E_GRANULARITY_NOT_SUPPORTED);
	C(PMEM2_E_OFFSET_OUT_OF_RANGE);
	C(PMEM2_E_OFFSET_UNALIGNED);
	C(PMEM2_E_INVALID_ALIGNMENT_FORMAT);
	C(PMEM2_E_INVALID_ALIGNMENT_VALUE);
	C(PMEM2_E_INVALID_SIZE_FORMAT);
	C(PMEM2_E_LENGTH_UNALIGNED);
	C(PMEM2_E_MAPPING_NOT_FOUND);
	C(PMEM2_E_BUFFER_TOO_SMALL);
	C(PMEM2_E_SOURCE_EMPTY);
	C(PMEM2_E_INVALID_SHARING_VALUE);
	C(PMEM2_E_SRC_DEVDAX_PRIVATE);
	C(PMEM2_E_INVALID_ADDRESS_REQUEST_TYPE);
	C(PMEM2_E_ADDRESS_UNALIGNED);
	C(PMEM2_E_ADDRESS_NULL);
	C(PMEM2_E_DEEP_FLUSH_RANGE);
	C(PMEM2_E_INVALID_REGION_FORMAT);
	C(PMEM2_E_DAX_REGION_NOT_FOUND);
	C(PMEM2_E_INVALID_DEV_FORMAT);
	C(PMEM2_E_CANNOT_READ_BOUNDS);
	C(PMEM2_E_NO_BAD_BLOCK_FOUND);
	C(PMEM2_E_LENGTH_OUT_OF_RANGE);
	C(PMEM2_E_INVALID_PROT_FLAG);
	C(PMEM2_E_NO_ACCESS);
	C(PMEM2_E_VM_RESERVATION_NOT_EMPTY);
	C(PMEM2_E_MAP_EXISTS);
	C(PMEM2_E_FILE_DESCRIPTOR_NOT_SET);
	C(PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED);
	C(PMEM2_E_IO_FAIL);
	C(PMEM2_PROT_EXEC);
	C(PMEM2_PROT_READ);
	C(PMEM2_PROT_WRITE);
	C(PMEM2_PROT_NONE);
	C(PMEM2_GRANULARITY_BYTE);
	C(PMEM2_GRANULARITY_CACHE_LINE);
	C(PMEM2_GRANULARITY_PAGE);
	C(PMEM2_SHARED);
	C(PMEM2_PRIVATE);
#undef C
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--constants")) {
		print_constants();
		return 0;
	}
	if (dlsym(RTLD_DEFAULT, "msync") != (void *)msync) {
		fprintf(stderr, "oracle: libpmem2's msync calls would not be observed: link with -rdynamic\n");
		return 2;
	}
	char line[8192];
	while (fgets(line, sizeof(line), stdin))
		run(line);
	return 0;
}
