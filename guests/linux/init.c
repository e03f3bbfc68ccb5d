/*
 * urunc-init: PID 1 of a Linux microVM that runs one container process.
 *
 * The runtime puts this binary at /.urunc/init in the initrd and boots with
 * rdinit=/.urunc/init. Everything about the process comes from files under
 * /.urunc/ (see README.md for their exact format), never from the kernel
 * command line, which is short and cannot carry arbitrary bytes.
 *
 * When the application exits, the VM ends so that QEMU's exit status is the
 * application's: odd codes through isa-debug-exit (QEMU exits with
 * (value << 1) | 1), 0 through a reboot that -no-reboot turns into exit 0,
 * even codes as code | 1 (the device cannot express them).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define URUNC_DIR "/.urunc"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEBUG_EXIT_PORT 0xf4
#define AGENT_DELAY_MS 100

/* Exit codes of init's own failures, chosen odd so they survive the exit
 * device exactly. */
#define EXIT_INIT_FAILED 125
#define EXIT_NOT_FOUND 127

static pid_t app_pid;
static int exec_ports;

int agent_ports(const char *count_file); /* agent.c */
void agent_start(int wanted);
void job_run(void); /* job.c */

void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(2, "urunc-init: ", 12);
	(void)!write(2, buf, n);
}

/* End the VM with exit status `code` (see the mapping at the top). */
void __attribute__((noreturn)) vm_exit(int code)
{
	int fd;

	code &= 0xff;
	/* The app's last bytes may still sit in the tty's transmit buffer. */
	tcdrain(1);
	sync();
	if (code != 0 && ioperm(DEBUG_EXIT_PORT, 4, 1) == 0)
		outl((unsigned)(code >> 1), DEBUG_EXIT_PORT);
	/* Code 0, or no exit device: reboot, which QEMU's -no-reboot turns
	 * into exit 0. Console log level 0 keeps the kernel's "Restarting
	 * system" off the container's output (klogctl cannot go below 1). */
	fd = open("/proc/sys/kernel/printk", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "0\n", 2);
		close(fd);
	}
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* Read a whole file; returns NULL (errno set) on failure. The buffer is
 * NUL-terminated one past *len so text parsers can use it as a string. */
static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Split a buffer of NUL-terminated strings into a NULL-terminated vector.
 * A final element without its NUL still counts. */
static char **split_nul(char *buf, size_t len)
{
	size_t count = 0, i, k = 0;
	char **v;

	for (i = 0; i < len; i++)
		if (buf[i] == '\0')
			count++;
	if (len > 0 && buf[len - 1] != '\0')
		count++;
	v = calloc(count + 1, sizeof(*v));
	for (i = 0; i < len; i += strlen(buf + i) + 1)
		v[k++] = buf + i;
	return v;
}

static void mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return;
	for (p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, mode);
			*p = '/';
		}
	}
	mkdir(tmp, mode);
}

static void mount_fs(const char *src, const char *target, const char *type,
		     unsigned long flags, const char *data)
{
	mkdir_p(target, 0755);
	if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
		say("mount %s on %s: %s", type, target, strerror(errno));
}

static void mount_api_filesystems(void)
{
	const unsigned long nse = MS_NOSUID | MS_NOEXEC | MS_NODEV;

	mount_fs("proc", "/proc", "proc", nse, NULL);
	mount_fs("sysfs", "/sys", "sysfs", nse, NULL);
	mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "gid=5,mode=620,ptmxmode=666");
	mount_fs("shm", "/dev/shm", "tmpfs", nse, "mode=1777");
	(void)!symlink("/proc/self/fd", "/dev/fd");
	(void)!symlink("/proc/self/fd/0", "/dev/stdin");
	(void)!symlink("/proc/self/fd/1", "/dev/stdout");
	(void)!symlink("/proc/self/fd/2", "/dev/stderr");
	if (mkdir("/tmp", 01777) == 0)
		chmod("/tmp", 01777);
}

static void load_modules(void)
{
	size_t len;
	char *list = read_file(URUNC_DIR "/modules/order", &len);
	char *line, *save = NULL;

	if (!list)
		return;
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char path[512];
		int fd;

		if (!*line)
			continue;
		snprintf(path, sizeof(path), URUNC_DIR "/modules/%s", line);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			say("module %s: %s", line, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			say("load module %s: %s", line, strerror(errno));
		close(fd);
	}
	free(list);
}

/* /.urunc/root: "FSTYPE SOURCE [OPTIONS]" on one line. Mount it and make it
 * the root, as switch_root does (the initramfs stays underneath, unused). */
static int switch_root(void)
{
	size_t len;
	char *spec = read_file(URUNC_DIR "/root", &len);
	char *fstype, *source, *options, *save = NULL;
	unsigned long flags = 0;

	if (!spec)
		return 0;
	fstype = strtok_r(spec, " \t\n", &save);
	source = strtok_r(NULL, " \t\n", &save);
	options = strtok_r(NULL, " \t\n", &save);
	if (!fstype || !source) {
		say(URUNC_DIR "/root: expected FSTYPE SOURCE [OPTIONS]");
		return -1;
	}
	if (options && strcmp(options, "ro") == 0) {
		flags |= MS_RDONLY;
		options = NULL;
	}
	mkdir("/.urunc/newroot", 0755);
	if (mount(source, "/.urunc/newroot", fstype, flags, options) < 0) {
		say("mount root %s (%s): %s", source, fstype, strerror(errno));
		return -1;
	}
	umount2("/dev", MNT_DETACH);
	if (chdir("/.urunc/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0) {
		say("switch to root %s: %s", source, strerror(errno));
		return -1;
	}
	free(spec);
	return 0;
}

/* /.urunc/mounts: per volume four NUL-terminated fields KIND SOURCE DEST ro|rw
 * (README.md). Read, and /.urunc/files opened, before switch_root: both stay in
 * the initramfs, which the new root hides. */
static char *volumes;
static size_t volumes_len;
static int files_dir = -1;

static void read_volumes(void)
{
	volumes = read_file(URUNC_DIR "/mounts", &volumes_len);
	files_dir = open(URUNC_DIR "/files", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Make DEST exist as a directory, or as an empty file for a file mount. */
static int make_mount_point(const char *dest, int is_file)
{
	char parent[4096];
	char *slash;
	int fd;

	if (!is_file) {
		mkdir_p(dest, 0755);
		return 0;
	}
	if (snprintf(parent, sizeof(parent), "%s", dest) >= (int)sizeof(parent))
		return -1;
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		mkdir_p(parent, 0755);
	}
	fd = open(dest, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno != EISDIR)
		return -1;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Every volume at its destination, in order, before the application starts; a
 * volume that cannot be mounted ends the VM: the application never runs without
 * its data. */
static void mount_volumes(void)
{
	char **f;
	int n = 0, i;

	if (!volumes)
		return;
	f = split_nul(volumes, volumes_len);
	while (f[n])
		n++;
	for (i = 0; i + 3 < n; i += 4) {
		const char *kind = f[i], *source = f[i + 1], *dest = f[i + 2];
		unsigned long ro = strcmp(f[i + 3], "ro") == 0 ? MS_RDONLY : 0;
		int rc;

		if (make_mount_point(dest, strcmp(kind, "file") == 0) < 0) {
			say("volume %s: cannot make the mount point: %s", dest, strerror(errno));
			vm_exit(EXIT_INIT_FAILED);
		}
		if (strcmp(kind, "9p") == 0) {
			rc = mount(source, dest, "9p", ro | MS_NODEV,
				   "trans=virtio,version=9p2000.L,msize=524288");
		} else if (strcmp(kind, "tmpfs") == 0) {
			rc = mount("tmpfs", dest, "tmpfs", ro | MS_NOSUID | MS_NODEV,
				   *source ? source : NULL);
		} else if (strcmp(kind, "file") == 0) {
			char from[64];

			snprintf(from, sizeof(from), "/proc/self/fd/%d/%s", files_dir, source);
			rc = mount(from, dest, NULL, MS_BIND, NULL);
			if (rc == 0 && ro)
				rc = mount(NULL, dest, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
		} else {
			say("volume %s: unknown kind %s", dest, kind);
			vm_exit(EXIT_INIT_FAILED);
		}
		if (rc < 0) {
			say("volume %s (%s %s): %s", dest, kind, source, strerror(errno));
			vm_exit(EXIT_INIT_FAILED);
		}
	}
	free(f);
	if (files_dir >= 0)
		close(files_dir);
}

static int set_addr(int sock, const char *ifname, unsigned long req, in_addr_t addr)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr;
	return ioctl(sock, req, &ifr);
}

static int if_up(int sock, const char *ifname)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

static int add_route(int sock, const char *ifname, in_addr_t dst, in_addr_t mask,
		     in_addr_t gw, unsigned short flags)
{
	struct rtentry rt;

	memset(&rt, 0, sizeof(rt));
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_dst)->sin_addr.s_addr = dst;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_addr.s_addr = mask;
	((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_gateway)->sin_addr.s_addr = gw;
	rt.rt_flags = RTF_UP | flags;
	rt.rt_dev = (char *)ifname;
	return ioctl(sock, SIOCADDRT, &rt);
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned v[6];
	int i;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)v[i];
	return 0;
}

/* /.urunc/net: "key=value" lines: ip=A.B.C.D/PREFIX, gw=, mac=, mtu=, dns=
 * (repeatable), search= (repeatable), if= (default eth0). */
static void configure_network(void)
{
	size_t len;
	char *text = read_file(URUNC_DIR "/net", &len);
	char *line, *save = NULL;
	char ifname[IFNAMSIZ] = "eth0";
	char dns[1024] = "", search[1024] = "";
	const char *mac = NULL;
	in_addr_t addr = 0, mask = 0, gw = 0;
	int have_ip = 0, mtu = 0, sock, tries;

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		say("socket: %s", strerror(errno));
		free(text);
		return;
	}
	if (if_up(sock, "lo") < 0)
		say("bring up lo: %s", strerror(errno));
	if (!text) {
		close(sock);
		return;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *value = strchr(line, '=');
		if (!value)
			continue;
		*value++ = '\0';
		if (strcmp(line, "ip") == 0) {
			char *slash = strchr(value, '/');
			int prefix = slash ? atoi(slash + 1) : 32;
			if (slash)
				*slash = '\0';
			if (inet_pton(AF_INET, value, &addr) != 1 || prefix < 0 || prefix > 32) {
				say("net: bad ip %s", value);
				continue;
			}
			mask = prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
			have_ip = 1;
		} else if (strcmp(line, "gw") == 0) {
			if (inet_pton(AF_INET, value, &gw) != 1)
				say("net: bad gw %s", value);
		} else if (strcmp(line, "mac") == 0) {
			mac = value;
		} else if (strcmp(line, "mtu") == 0) {
			mtu = atoi(value);
		} else if (strcmp(line, "if") == 0) {
			snprintf(ifname, sizeof(ifname), "%s", value);
		} else if (strcmp(line, "dns") == 0) {
			size_t n = strlen(dns);
			snprintf(dns + n, sizeof(dns) - n, "nameserver %s\n", value);
		} else if (strcmp(line, "search") == 0) {
			size_t n = strlen(search);
			snprintf(search + n, sizeof(search) - n, "%s%s", n ? " " : "search ", value);
		}
	}

	/* Drivers probe synchronously when their module loads, but give a
	 * late device a moment before giving up. */
	for (tries = 0; if_nametoindex(ifname) == 0 && tries < 100; tries++)
		usleep(10000);
	if (if_nametoindex(ifname) == 0) {
		say("net: no interface %s", ifname);
		goto out;
	}
	if (mac) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		if (parse_mac(mac, (unsigned char *)ifr.ifr_hwaddr.sa_data) < 0)
			say("net: bad mac %s", mac);
		else if (ioctl(sock, SIOCSIFHWADDR, &ifr) < 0)
			say("net: set mac: %s", strerror(errno));
	}
	if (mtu > 0) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
		ifr.ifr_mtu = mtu;
		if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
			say("net: set mtu: %s", strerror(errno));
	}
	if (have_ip && (set_addr(sock, ifname, SIOCSIFADDR, addr) < 0 ||
			set_addr(sock, ifname, SIOCSIFNETMASK, mask) < 0))
		say("net: set address: %s", strerror(errno));
	if (if_up(sock, ifname) < 0)
		say("net: bring up %s: %s", ifname, strerror(errno));
	if (gw) {
		/* A gateway outside the subnet needs a host route first. */
		if (!have_ip || (gw & mask) != (addr & mask))
			add_route(sock, ifname, gw, 0xffffffffu, 0, RTF_HOST);
		if (add_route(sock, ifname, 0, 0, gw, RTF_GATEWAY) < 0)
			say("net: default route via gw: %s", strerror(errno));
	}
	if (dns[0] || search[0]) {
		FILE *f;
		mkdir("/etc", 0755);
		f = fopen("/etc/resolv.conf", "we");
		if (f) {
			if (search[0])
				fprintf(f, "%s\n", search);
			fputs(dns, f);
			fclose(f);
		} else {
			say("write /etc/resolv.conf: %s", strerror(errno));
		}
	}
out:
	close(sock);
	free(text);
}

static void set_hostname(void)
{
	size_t len;
	char *name = read_file(URUNC_DIR "/hostname", &len);

	if (!name)
		return;
	while (len > 0 && (name[len - 1] == '\n' || name[len - 1] == '\0'))
		len--;
	if (len > 0 && sethostname(name, len) < 0)
		say("sethostname: %s", strerror(errno));
	free(name);
}

/* Without /.urunc/tty the console carries a plain byte stream: no echo of
 * the input, no "\n" to "\r\n" on output, no line editing. */
static void set_console_mode(int terminal)
{
	struct termios t;

	if (terminal || tcgetattr(0, &t) < 0)
		return;
	cfmakeraw(&t);
	t.c_lflag |= ISIG; /* keep ^C as SIGINT for the foreground app */
	tcsetattr(0, TCSANOW, &t);
}

/* The standard streams are the console device, or nothing: a /dev/console that the
 * image carried as a regular file (Docker's init layer has one) must not become them. */
static int is_console(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode);
}

static void ensure_console(void)
{
	int fd;

	if (is_console(0) && is_console(1) && is_console(2))
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return;
	if (!is_console(fd)) {
		close(fd);
		return;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* execvp with an explicit environment and PATH. Returns the errno of the
 * most telling failure. */
int exec_path(char **argv, char **envp)
{
	const char *path = NULL;
	char buf[4096];
	int saved = ENOENT;
	char **e;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return errno;
	}
	for (e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	if (!path)
		path = DEFAULT_PATH;
	while (*path) {
		const char *end = strchrnul(path, ':');
		int n = (int)(end - path);
		snprintf(buf, sizeof(buf), "%.*s%s%s", n, path, n ? "/" : "", argv[0]);
		execve(buf, argv, envp);
		if (errno != ENOENT && errno != ENOTDIR)
			saved = errno;
		path = *end ? end + 1 : end;
	}
	return saved;
}

/* /.urunc/user: "UID GID [GID...]" (decimal). */
static int switch_user(void)
{
	size_t len;
	char *text = read_file(URUNC_DIR "/user", &len);
	gid_t groups[64];
	long uid, gid;
	char *p, *end;
	int n = 0;

	if (!text)
		return 0;
	uid = strtol(text, &end, 10);
	gid = strtol(end, &p, 10);
	if (p == end) {
		say(URUNC_DIR "/user: expected UID GID [GID...]");
		return -1;
	}
	for (;;) {
		long g = strtol(p, &end, 10);
		if (end == p || n == 64)
			break;
		groups[n++] = (gid_t)g;
		p = end;
	}
	free(text);
	if (setgroups(n, groups) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0) {
		say("switch to user %ld:%ld: %s", uid, gid, strerror(errno));
		return -1;
	}
	return 0;
}

/* A tmpfs's default limits are half of the RAM the kernel counts when it is mounted. The
 * initramfs (rootfs) and devtmpfs are mounted during boot, before the initramfs image is
 * freed: a cold boot's limits would follow the size of its initramfs (so of the image), a
 * template's the size of its own. Both are set again here, from the RAM the guest has now, so
 * containers of one memory size see the same limits however they started. */
static void settle_tmpfs_limits(void)
{
	struct sysinfo si;
	unsigned long long half;
	char opts[96];

	if (sysinfo(&si) != 0)
		return;
	half = (unsigned long long)si.totalram * si.mem_unit / 2;
	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu", half, half / (unsigned long long)sysconf(_SC_PAGESIZE));
	if (mount(NULL, "/", NULL, MS_REMOUNT, opts) < 0)
		say("remount / with %s: %s", opts, strerror(errno));
	if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_NOSUID, opts) < 0)
		say("remount /dev with %s: %s", opts, strerror(errno));
}

static void forward_signal(int sig)
{
	if (app_pid > 0)
		kill(app_pid, sig);
}

int main(void)
{
	static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
					SIGWINCH, SIGCONT};
	char **argv, **envp, *args, *env, *cwd;
	size_t args_len, env_len = 0, cwd_len = 0;
	int terminal, status = 0, i, err;
	struct sigaction sa;
	struct timespec agent_at;
	sigset_t all, old, chld;

	ensure_console();
	mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	ensure_console(); /* again, from devtmpfs, if the initramfs had no console device */
	load_modules();
	/* Template mode (job.c): wait for the job, unpack it into / and go on from here as a
	 * cold boot does. The job has no modules/order: the modules are loaded already. */
	if (access(URUNC_DIR "/template", F_OK) == 0)
		job_run();
	settle_tmpfs_limits();

	args = read_file(URUNC_DIR "/args", &args_len);
	if (!args || args_len == 0) {
		say("no process: " URUNC_DIR "/args %s", args ? "is empty" : strerror(errno));
		vm_exit(EXIT_INIT_FAILED);
	}
	argv = split_nul(args, args_len);
	env = read_file(URUNC_DIR "/env", &env_len);
	envp = env ? split_nul(env, env_len) : calloc(1, sizeof(char *));
	cwd = read_file(URUNC_DIR "/cwd", &cwd_len);
	terminal = access(URUNC_DIR "/tty", F_OK) == 0;

	read_volumes();
	exec_ports = agent_ports(URUNC_DIR "/exec");
	if (switch_root() < 0)
		vm_exit(EXIT_INIT_FAILED);
	mount_api_filesystems();
	set_console_mode(terminal);
	/* Networking and the hostname are configured before any switch_user()
	 * in the child, which drops the right to do either. */
	set_hostname();
	configure_network();
	mount_volumes(); /* after the network: an engine's /etc/resolv.conf wins over ours */
	reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del becomes SIGINT to init */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < (int)(sizeof(forwarded) / sizeof(forwarded[0])); i++)
		sigaction(forwarded[i], &sa, NULL);

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	app_pid = fork();
	if (app_pid < 0) {
		say("fork: %s", strerror(errno));
		vm_exit(EXIT_INIT_FAILED);
	}
	if (app_pid == 0) {
		sa.sa_handler = SIG_DFL;
		for (i = 1; i < NSIG; i++)
			sigaction(i, &sa, NULL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setsid();
		if (terminal)
			ioctl(0, TIOCSCTTY, 0);
		if (cwd && cwd_len > 0) {
			mkdir_p(cwd, 0755);
			if (chdir(cwd) < 0) {
				say("chdir %s: %s", cwd, strerror(errno));
				_exit(EXIT_INIT_FAILED);
			}
		}
		if (switch_user() < 0)
			_exit(EXIT_INIT_FAILED);
		err = exec_path(argv, envp);
		say("exec %s: %s", argv[0], strerror(err));
		_exit(err == ENOENT || err == ENOTDIR ? EXIT_NOT_FOUND : 126);
	}
	chld = old;
	sigaddset(&chld, SIGCHLD); /* taken by sigtimedwait below, never lost */
	sigprocmask(SIG_SETMASK, &chld, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	clock_gettime(CLOCK_MONOTONIC, &agent_at);
	agent_at.tv_nsec += AGENT_DELAY_MS * 1000000L;
	agent_at.tv_sec += agent_at.tv_nsec / 1000000000L;
	agent_at.tv_nsec %= 1000000000L;

	/* Reap everything (orphans are re-parented to us) until the app ends. The exec agent
	 * (execs see what the application sees) starts AGENT_DELAY_MS after the application:
	 * on one vCPU, the application's start comes first, and a job done by then never
	 * starts it. An exec asked for sooner waits in its port until the agent opens it. */
	for (;;) {
		struct timespec now, left, *wait_for = NULL;
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid == app_pid) {
			status = st;
			break;
		}
		if (pid > 0)
			continue;
		if (pid < 0 && errno != EINTR)
			break;
		if (exec_ports > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left.tv_sec = agent_at.tv_sec - now.tv_sec;
			left.tv_nsec = agent_at.tv_nsec - now.tv_nsec;
			if (left.tv_nsec < 0) {
				left.tv_sec--;
				left.tv_nsec += 1000000000L;
			}
			if (left.tv_sec < 0) {
				agent_start(exec_ports);
				exec_ports = 0;
				continue;
			}
			wait_for = &left;
		}
		sigtimedwait(&chld, NULL, wait_for); /* SIGCHLD, the time, or a forwarded signal */
	}
	app_pid = 0;
	kill(-1, SIGKILL);
	if (WIFEXITED(status))
		vm_exit(WEXITSTATUS(status));
	vm_exit(128 + WTERMSIG(status));
}
