/*
 * Template mode of urunc-init: take the job from the host (README.md, "Template mode and
 * the job").
 *
 * A template guest boots with /.urunc/template and no container: init loads the modules,
 * opens the virtio-serial port named urunc.job, says "urunc-template-ready" on the console
 * and waits. The host snapshots it there; each container restores the snapshot and sends
 * the job on that port:
 *
 *   a header of exactly 256 bytes: "urunc-job/1 SIZE SEC NSEC SEEDHEX", spaces up to byte
 *   254, "\n" at byte 255; then SIZE bytes: one or more newc archives, each after zero
 *   padding to a 4-byte boundary.
 *
 * The archives are unpacked into / (still the initramfs) as the kernel unpacks an initrd,
 * streaming; the clock is set to SEC.NSEC and the kernel's CRNG reseeded from the 32 bytes
 * of SEEDHEX. Then init goes on as after a cold boot: the job holds the same /.urunc/ files
 * and rootfs that a cold boot's initramfs holds.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

void say(const char *fmt, ...); /* init.c */
void vm_exit(int code) __attribute__((noreturn));

#define EXIT_INIT_FAILED 125 /* as in init.c */

#define TEMPLATE_FILE "/.urunc/template"
#define READY_LINE "urunc-template-ready\n"
#define JOB_PORT "urunc.job"
#define PORT_CLASS "/sys/class/virtio-ports"
#define PROTOCOL "urunc-job/1"
#define HEADER_SIZE 256
#define MAX_JOB (16ULL << 30)   /* SIZE */
#define MAX_NAMESIZE 4096       /* a name with its NUL (PATH_MAX) */
#define MAX_SYMLINK 4095        /* a symlink's target */
#define MAX_ENTRIES 1000000     /* in all archives of a job */
#define PORT_WAIT_SECONDS 60    /* for the port to appear */
#define STALL_SECONDS 60        /* for more data once the job has begun */
#define SCAN_NS 20000000L       /* port rescan, and the wait while no host is connected */
#define WRITE_CHUNK 32768       /* file data gathered before one write */
#define NEWC_HEADER 110

struct job {
	int fd;                  /* the port */
	int root;                /* "/" */
	unsigned long long got;  /* bytes read from the port */
	unsigned long long used; /* bytes consumed */
	unsigned long long end;  /* HEADER_SIZE + SIZE (HEADER_SIZE until the header is read) */
	struct timespec last;    /* when data last came */
	sigset_t waitmask;       /* the signal mask while waiting: SIGIO let through */
	int dev_unmounted;       /* the job has entries under dev/: devtmpfs is off /dev meanwhile */
	size_t pos, len;         /* unconsumed bytes: buf[pos..len) */
	unsigned char buf[65536];
};

/* Directories get their mtime when everything is unpacked (as the kernel does: adding
 * entries changes a directory's mtime). */
static struct {
	char *names; /* NUL-separated */
	size_t size, cap;
	time_t *mtimes;
	size_t count, mcap;
} dirs;

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char buf[480];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("%s", buf);
	vm_exit(EXIT_INIT_FAILED);
}

/* A name for a one-line message: printable ASCII, others as \xNN, at most ~100 bytes. */
static const char *shown(const char *s)
{
	static char out[128];
	size_t n = 0;

	for (; *s && n < 100; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, sizeof(out) - n, "\\x%02x", c);
	}
	if (*s)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "...");
	out[n] = '\0';
	return out;
}

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void on_sigio(int sig)
{
	(void)sig;
}

/* ---- the port ------------------------------------------------------------------------ */

int port_name(const char *vport, char name[64]); /* agent.c */

/* /dev/vportNpM of the port named JOB_PORT, if it is there yet (its name arrives through
 * virtio_console's control queue, after the port itself). */
static int find_port(char *dev, size_t size)
{
	DIR *d = opendir(PORT_CLASS);
	struct dirent *e;
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		char name[64];

		if (e->d_name[0] == '.')
			continue;
		if (port_name(e->d_name, name) && strcmp(name, JOB_PORT) == 0) {
			snprintf(dev, size, "/dev/%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/* Open the job port, once: virtio_console drops a port's unread data when it is closed. */
static int open_port(void)
{
	struct timespec start, scan = {0, SCAN_NS};
	int created = mkdir("/sys", 0755) == 0, fd = -1;

	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0)
		fail("template: mount /sys: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		char dev[300];

		if (find_port(dev, sizeof(dev))) {
			fd = open(dev, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0)
				break;
			if (errno != ENOENT) /* the device node may lag behind sysfs */
				fail("template: open %s (" JOB_PORT "): %s", dev, strerror(errno));
		}
		if (since(&start) > PORT_WAIT_SECONDS)
			fail("template: no virtio-serial port named " JOB_PORT " after %d s",
			     PORT_WAIT_SECONDS);
		nanosleep(&scan, NULL);
	}
	/* The rest of init mounts /sys where it belongs; leave / as a cold boot has it. */
	umount2("/sys", MNT_DETACH);
	if (created)
		rmdir("/sys");
	/* A host connecting (after a restore) or sending data raises SIGIO. */
	fcntl(fd, F_SETOWN, getpid());
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
	return fd;
}

/* Read more of the job into buf (never past its end). Waits while no host is connected
 * and nothing came yet; once data came, the host closing its side early is a truncated
 * job, and a minute without data a stalled one. */
static void fill(struct job *j)
{
	size_t room;

	if (j->pos > 0) {
		memmove(j->buf, j->buf + j->pos, j->len - j->pos);
		j->len -= j->pos;
		j->pos = 0;
	}
	room = sizeof(j->buf) - j->len;
	if (room > j->end - j->got)
		room = (size_t)(j->end - j->got);
	if (room == 0)
		fail("job: internal error: nothing left to read");
	for (;;) {
		ssize_t n = read(j->fd, j->buf + j->len, room);
		struct pollfd p = {.fd = j->fd, .events = POLLIN};
		struct timespec wait = {0, SCAN_NS}, second = {1, 0};

		if (n > 0) {
			j->len += (size_t)n;
			j->got += (unsigned long long)n;
			clock_gettime(CLOCK_MONOTONIC, &j->last);
			return;
		}
		if (n == 0) {
			/* Nothing buffered and no host connected (POLLHUP). */
			if (j->got > 0)
				fail("job truncated: the host closed the port after %llu of %llu bytes",
				     j->got, j->end);
			ppoll(NULL, 0, &wait, &j->waitmask); /* a connecting host's SIGIO ends it early */
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			fail("job: read " JOB_PORT ": %s", strerror(errno));
		/* A host is connected; its data (or its leaving) wakes the poll. */
		ppoll(&p, 1, &second, &j->waitmask);
		if (j->got > 0 && since(&j->last) > STALL_SECONDS)
			fail("job stalled: nothing for %d s after %llu of %llu bytes", STALL_SECONDS,
			     j->got, j->end);
	}
}

/* At least N (<= sizeof buf) unconsumed bytes of the job, not past its end. */
static unsigned char *peek(struct job *j, size_t n, const char *what)
{
	if (j->used + n > j->end)
		fail("job: %s runs past the job's end (byte %llu of %llu)", what, j->used, j->end);
	while (j->len - j->pos < n)
		fill(j);
	return j->buf + j->pos;
}

static void consume(struct job *j, size_t n)
{
	j->pos += n;
	j->used += n;
}

static unsigned char *take(struct job *j, size_t n, const char *what)
{
	unsigned char *p = peek(j, n, what);

	consume(j, n);
	return p;
}

/* Pass over N bytes, or hand them to FD (-1: drop them). Returns the sum of the bytes. */
static uint32_t copy_out(struct job *j, unsigned long long n, int fd, const char *name, int crc)
{
	uint32_t sum = 0;

	if (j->used + n > j->end)
		fail("job: %s runs past the job's end", shown(name));
	while (n > 0) {
		size_t k = j->len - j->pos, i;
		const unsigned char *p;

		/* A read of the port brings one 4 KiB buffer: gather WRITE_CHUNK before a write,
		 * a write per buffer costs as much again under TCG. */
		if (k == 0 || (fd >= 0 && k < n && k < WRITE_CHUNK)) {
			fill(j);
			continue;
		}
		if (k > n)
			k = (size_t)n;
		p = j->buf + j->pos;
		for (i = 0; crc && i < k; i++)
			sum += p[i];
		while (fd >= 0 && k > 0) {
			ssize_t w = write(fd, p, k);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				fail("job: write %s: %s", shown(name), strerror(errno));
			consume(j, (size_t)w);
			p += w;
			k -= (size_t)w;
			n -= (unsigned long long)w;
		}
		if (fd < 0) {
			consume(j, k);
			n -= k;
		}
	}
	return sum;
}

/* ---- the header ---------------------------------------------------------------------- */

/* A decimal field of at most 19 digits and at most MAX, then one space. */
static unsigned long long header_number(const char **p, const char *what, unsigned long long max)
{
	unsigned long long v = 0;
	int digits = 0;

	while (isdigit((unsigned char)**p) && digits < 20) {
		v = v * 10 + (unsigned long long)(**p - '0');
		(*p)++;
		digits++;
	}
	if (digits == 0 || digits > 19)
		fail("bad job header: %s is not a decimal number", what);
	if (v > max)
		fail("bad job header: %s %llu is too large (at most %llu)", what, v, max);
	if (**p != ' ')
		fail("bad job header: no space after %s", what);
	(*p)++;
	return v;
}

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void parse_header(const unsigned char *h, unsigned long long *size, struct timespec *now,
			 unsigned char seed[32])
{
	char text[HEADER_SIZE + 1];
	const char *p = text;
	int i;

	memcpy(text, h, HEADER_SIZE);
	text[HEADER_SIZE] = '\0';
	if (memcmp(text, PROTOCOL " ", strlen(PROTOCOL) + 1) != 0)
		fail("bad job header: it does not begin with \"" PROTOCOL " \"");
	if (h[HEADER_SIZE - 1] != '\n')
		fail("bad job header: byte %d is not a newline", HEADER_SIZE);
	for (i = 0; i < HEADER_SIZE - 1; i++)
		if (h[i] < 0x20 || h[i] >= 0x7f)
			fail("bad job header: byte %d is not printable ASCII", i + 1);
	p += strlen(PROTOCOL) + 1;
	*size = header_number(&p, "SIZE", MAX_JOB);
	now->tv_sec = (time_t)header_number(&p, "SEC", (unsigned long long)INT64_MAX);
	now->tv_nsec = (long)header_number(&p, "NSEC", 999999999ULL);
	for (i = 0; i < 64; i++) {
		int v = hex((unsigned char)p[i]);
		if (v < 0)
			fail("bad job header: SEEDHEX is not 64 hex digits");
		if (i % 2 == 0)
			seed[i / 2] = (unsigned char)(v << 4);
		else
			seed[i / 2] |= (unsigned char)v;
	}
	for (p += 64; p < text + HEADER_SIZE - 1; p++)
		if (*p != ' ')
			fail("bad job header: byte %d after SEEDHEX is not a space", (int)(p - text) + 1);
}

/* The host's clock, and its random bytes mixed into the CRNG and a reseed: a restored
 * guest has the template's time, and must not share its random state with its siblings. */
static void set_clock_and_seed(const struct timespec *now, unsigned char seed[32], int urandom)
{
	struct rand_pool_info *info = calloc(1, sizeof(*info) + 32);

	if (clock_settime(CLOCK_REALTIME, now) < 0)
		fail("job: set the clock to %lld.%09ld: %s", (long long)now->tv_sec, now->tv_nsec,
		     strerror(errno));
	info->entropy_count = 256;
	info->buf_size = 32;
	memcpy(info->buf, seed, 32);
	if (ioctl(urandom, RNDADDENTROPY, info) < 0)
		fail("job: add the host's seed to the kernel's entropy (RNDADDENTROPY): %s",
		     strerror(errno));
	if (ioctl(urandom, RNDRESEEDCRNG) < 0)
		fail("job: reseed the kernel's CRNG (RNDRESEEDCRNG): %s", strerror(errno));
	explicit_bzero(info, sizeof(*info) + 32);
	explicit_bzero(seed, 32);
	free(info);
}

/* ---- the archives -------------------------------------------------------------------- */

struct entry {
	unsigned long mode, uid, gid, mtime, size, rdevmajor, rdevminor, namesize, check;
	int crc; /* 070702: check is the sum of the data's bytes */
	char name[MAX_NAMESIZE];
};

static int newc_field(const unsigned char *p, unsigned long *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 8; i++) {
		int d = hex(p[i]);
		if (d < 0)
			return -1;
		*v = (*v << 4) | (unsigned long)d;
	}
	return 0;
}

static unsigned long long pad4(unsigned long long n)
{
	return (4 - (n & 3)) & 3;
}

/* No empty name, none absolute, no ".." component. */
static void check_name(const char *name)
{
	const char *c = name;

	if (!*name)
		fail("job: an entry has an empty name");
	if (*name == '/')
		fail("job: entry %s: an absolute name", shown(name));
	while (*c) {
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			fail("job: entry %s: a \"..\" component", shown(name));
		c += n;
		while (*c == '/')
			c++;
	}
}

/* Make room for a new entry of type TYPE: an existing non-directory goes (as the kernel
 * replaces it), an existing directory stays for a directory and goes (if empty) for anything
 * else. */
static void clear_path(struct job *j, const char *name, mode_t type)
{
	struct stat st;

	if (fstatat(j->root, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		if (type == S_IFDIR)
			return;
		if (unlinkat(j->root, name, AT_REMOVEDIR) < 0)
			fail("job: entry %s: cannot replace the directory there: %s", shown(name),
			     strerror(errno));
		return;
	}
	if (unlinkat(j->root, name, 0) < 0)
		fail("job: entry %s: cannot replace what is there: %s", shown(name), strerror(errno));
}

static int setgid_dirs; /* a setgid directory was unpacked: what is made in it may not be 0:0 */

static void set_owner_mode(struct job *j, const struct entry *e, int fd)
{
	uid_t uid = (uid_t)e->uid;
	gid_t gid = (gid_t)e->gid;
	mode_t mode = (mode_t)(e->mode & 07777);
	int rc;

	/* The owner first: a chown clears the setuid and setgid bits. The init creates as root,
	 * so 0:0 is what an entry has already, unless a setgid directory gave it its group. */
	if (uid == 0 && gid == 0 && !setgid_dirs)
		rc = 0;
	else
		rc = fd >= 0 ? fchown(fd, uid, gid) : fchownat(j->root, e->name, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (rc < 0)
		fail("job: entry %s: chown %lu:%lu: %s", shown(e->name), e->uid, e->gid, strerror(errno));
	if (S_ISLNK(e->mode))
		return;
	rc = fd >= 0 ? fchmod(fd, mode) : fchmodat(j->root, e->name, mode, 0);
	if (rc < 0)
		fail("job: entry %s: chmod %04o: %s", shown(e->name), (unsigned)mode, strerror(errno));
}

static void set_mtime(struct job *j, const struct entry *e, int fd)
{
	struct timespec t[2] = {{(time_t)e->mtime, 0}, {(time_t)e->mtime, 0}};
	int rc = fd >= 0 ? futimens(fd, t) : utimensat(j->root, e->name, t, AT_SYMLINK_NOFOLLOW);

	if (rc < 0)
		fail("job: entry %s: set its time: %s", shown(e->name), strerror(errno));
}

static void remember_dir(const char *name, unsigned long mtime)
{
	size_t n = strlen(name) + 1;

	if (dirs.size + n > dirs.cap) {
		dirs.cap = (dirs.cap + n) * 2;
		dirs.names = realloc(dirs.names, dirs.cap);
	}
	if (dirs.count == dirs.mcap) {
		dirs.mcap = dirs.mcap ? dirs.mcap * 2 : 256;
		dirs.mtimes = realloc(dirs.mtimes, dirs.mcap * sizeof(*dirs.mtimes));
	}
	if (!dirs.names || !dirs.mtimes)
		fail("job: out of memory");
	memcpy(dirs.names + dirs.size, name, n);
	dirs.size += n;
	dirs.mtimes[dirs.count++] = (time_t)mtime;
}

/* Last to first, as the kernel's dir_utime(); a directory replaced since is skipped. */
static void set_dir_times(struct job *j)
{
	size_t off = dirs.size, k = dirs.count;

	while (k > 0) {
		struct timespec t[2];
		size_t start;

		k--;
		start = off - 1; /* the NUL ending this name */
		while (start > 0 && dirs.names[start - 1] != '\0')
			start--;
		t[0].tv_sec = t[1].tv_sec = dirs.mtimes[k];
		t[0].tv_nsec = t[1].tv_nsec = 0;
		utimensat(j->root, dirs.names + start, t, AT_SYMLINK_NOFOLLOW);
		off = start;
	}
	free(dirs.names);
	free(dirs.mtimes);
	memset(&dirs, 0, sizeof(dirs));
}

static void unpack_entry(struct job *j, struct entry *e)
{
	/* Entries under dev/ go into the initramfs, as the kernel would have put them, under the
	 * devtmpfs init mounts again afterwards (a job from urunc has none: the rootfs is in the
	 * template, and the mount costs a restored guest ~8 ms under TCG). */
	if (!j->dev_unmounted && (strcmp(e->name, "dev") == 0 || strncmp(e->name, "dev/", 4) == 0)) {
		umount2("/dev", MNT_DETACH);
		j->dev_unmounted = 1;
	}
	mode_t type = (mode_t)(e->mode & S_IFMT);
	unsigned long long body = e->size + pad4(e->size);
	uint32_t sum;
	int fd;

	if (j->used + body > j->end)
		fail("job: entry %s: its %lu bytes run past the job's end", shown(e->name), e->size);
	switch (type) {
	case S_IFDIR:
		if (e->mode & S_ISGID)
			setgid_dirs = 1;
		if (mkdirat(j->root, e->name, (mode_t)(e->mode & 07777)) < 0) {
			if (errno != EEXIST)
				fail("job: mkdir %s: %s", shown(e->name), strerror(errno));
			clear_path(j, e->name, S_IFDIR); /* something else there goes, a directory stays */
			if (mkdirat(j->root, e->name, (mode_t)(e->mode & 07777)) < 0 && errno != EEXIST)
				fail("job: mkdir %s: %s", shown(e->name), strerror(errno));
		}
		set_owner_mode(j, e, -1);
		remember_dir(e->name, e->mtime);
		copy_out(j, body, -1, e->name, 0);
		break;
	case S_IFREG:
		fd = openat(j->root, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST) { /* what is there goes (the kernel's replace) */
			clear_path(j, e->name, S_IFREG);
			fd = openat(j->root, e->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		}
		if (fd < 0)
			fail("job: create %s: %s", shown(e->name), strerror(errno));
		sum = copy_out(j, e->size, fd, e->name, e->crc);
		if (e->crc && sum != (uint32_t)e->check)
			fail("job: entry %s: bad data checksum", shown(e->name));
		set_owner_mode(j, e, fd);
		set_mtime(j, e, fd);
		if (close(fd) < 0)
			fail("job: write %s: %s", shown(e->name), strerror(errno));
		copy_out(j, pad4(e->size), -1, e->name, 0);
		break;
	case S_IFLNK: {
		char target[MAX_SYMLINK + 1];

		if (e->size == 0 || e->size > MAX_SYMLINK)
			fail("job: entry %s: a symlink target of %lu bytes", shown(e->name), e->size);
		memcpy(target, take(j, e->size, e->name), e->size);
		target[e->size] = '\0';
		if (strlen(target) != e->size)
			fail("job: entry %s: a NUL in its symlink target", shown(e->name));
		if (symlinkat(target, j->root, e->name) < 0 &&
		    (errno != EEXIST || (clear_path(j, e->name, S_IFLNK), symlinkat(target, j->root, e->name) < 0)))
			fail("job: symlink %s: %s", shown(e->name), strerror(errno));
		set_owner_mode(j, e, -1);
		set_mtime(j, e, -1);
		copy_out(j, pad4(e->size), -1, e->name, 0);
		break;
	}
	case S_IFIFO:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFSOCK:
		clear_path(j, e->name, type);
		if (mknodat(j->root, e->name, type | (mode_t)(e->mode & 07777),
			    makedev((unsigned)e->rdevmajor, (unsigned)e->rdevminor)) < 0)
			fail("job: mknod %s: %s", shown(e->name), strerror(errno));
		set_owner_mode(j, e, -1);
		set_mtime(j, e, -1);
		copy_out(j, body, -1, e->name, 0);
		break;
	default:
		fail("job: entry %s: unknown file type %06lo", shown(e->name), e->mode);
	}
}

/* One newc archive, up to and with its TRAILER!!!. */
static void unpack_archive(struct job *j, unsigned long *entries, struct entry *e)
{
	for (;;) {
		unsigned long f[13];
		const unsigned char *h;
		unsigned long long namepad;
		int i;

		if (++*entries > MAX_ENTRIES)
			fail("job: more than %d entries", MAX_ENTRIES);
		h = take(j, NEWC_HEADER, "an archive entry's header");
		if (memcmp(h, "070701", 6) != 0 && memcmp(h, "070702", 6) != 0)
			fail("job: no newc magic (070701) at byte %llu", j->used - NEWC_HEADER);
		e->crc = h[5] == '2';
		for (i = 0; i < 13; i++)
			if (newc_field(h + 6 + 8 * i, &f[i]) < 0)
				fail("job: a bad newc header at byte %llu", j->used - NEWC_HEADER);
		/* ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
		 * namesize check */
		e->mode = f[1];
		e->uid = f[2];
		e->gid = f[3];
		e->mtime = f[5];
		e->size = f[6];
		e->rdevmajor = f[9];
		e->rdevminor = f[10];
		e->namesize = f[11];
		e->check = f[12];
		if (e->namesize == 0 || e->namesize > MAX_NAMESIZE)
			fail("job: an entry name of %lu bytes (at most %d with its NUL)", e->namesize,
			     MAX_NAMESIZE);
		namepad = pad4(NEWC_HEADER + e->namesize);
		memcpy(e->name, take(j, e->namesize, "an entry's name"), e->namesize);
		if (e->name[e->namesize - 1] != '\0' || strlen(e->name) != e->namesize - 1)
			fail("job: an entry name with a NUL inside or none at its end");
		copy_out(j, namepad, -1, e->name, 0);
		if (strcmp(e->name, "TRAILER!!!") == 0) {
			copy_out(j, e->size + pad4(e->size), -1, e->name, 0);
			return;
		}
		check_name(e->name);
		unpack_entry(j, e);
	}
}

/* All archives of the job: each starts on a 4-byte boundary, after zero padding. */
static void unpack(struct job *j)
{
	static struct entry e;
	unsigned long entries = 0;
	int archives = 0;

	while (j->used < j->end) {
		unsigned long long left = j->end - j->used;
		size_t n = left < 4 ? (size_t)left : 4;
		const unsigned char *p = peek(j, n, "padding");

		if (memcmp(p, "\0\0\0\0", n) == 0) {
			consume(j, n);
			continue;
		}
		if (n < 4 || memcmp(p, "0707", 4) != 0)
			fail("job: neither zero padding nor a newc archive at byte %llu", j->used);
		unpack_archive(j, &entries, &e);
		archives++;
	}
	if (archives == 0)
		fail("job: no archive in it");
	set_dir_times(j);
}

/* ---- template mode --------------------------------------------------------------------- */

/* The loopback interface up, as configure_network() brings it up in a cold boot: done here,
 * before the snapshot, it costs a restored guest nothing (its first socket and the network
 * stack's notifier chains take ~20 ms under TCG); configure_network() then finds it up. */
static void loopback_up(void)
{
	struct ifreq r;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sock < 0)
		return;
	memset(&r, 0, sizeof(r));
	strcpy(r.ifr_name, "lo");
	if (ioctl(sock, SIOCGIFFLAGS, &r) == 0 && !(r.ifr_flags & IFF_UP)) {
		r.ifr_flags |= IFF_UP;
		ioctl(sock, SIOCSIFFLAGS, &r);
	}
	close(sock);
}

void job_run(void)
{
	static struct job j;
	unsigned char seed[32];
	unsigned long long size;
	struct timespec now;
	struct sigaction sa;
	sigset_t sigio, old;
	int urandom;

	/* A cold boot has no such file: leave none (a job that holds one makes it again). */
	unlink(TEMPLATE_FILE);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigio;
	sigaction(SIGIO, &sa, NULL);
	sigemptyset(&sigio);
	sigaddset(&sigio, SIGIO);
	sigprocmask(SIG_BLOCK, &sigio, &old);
	j.waitmask = old;
	sigdelset(&j.waitmask, SIGIO);

	j.fd = open_port();
	urandom = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (urandom < 0)
		fail("template: open /dev/urandom: %s", strerror(errno));
	j.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (j.root < 0)
		fail("template: open /: %s", strerror(errno));
	loopback_up();

	/* Ready: all bytes of the line out of the UART before the host acts on it, so that no
	 * restored copy has the end of it still to send. */
	(void)!write(1, READY_LINE, strlen(READY_LINE));
	tcdrain(1);

	j.end = HEADER_SIZE;
	parse_header(take(&j, HEADER_SIZE, "the header"), &size, &now, seed);
	j.end = HEADER_SIZE + size;
	set_clock_and_seed(&now, seed, urandom);
	close(urandom);
	unpack(&j);

	close(j.fd); /* everything was read */
	close(j.root);
	if (j.dev_unmounted) {
		if (mkdir("/dev", 0755) < 0 && errno != EEXIST)
			say("mkdir /dev: %s", strerror(errno));
		if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0)
			say("mount devtmpfs on /dev: %s", strerror(errno));
	}
	sa.sa_handler = SIG_IGN; /* drops a pending SIGIO */
	sigaction(SIGIO, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGIO, &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
}
