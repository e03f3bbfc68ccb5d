/*
 * The exec agent of urunc's Linux guest: runs processes the host asks for
 * (`urunc exec`, CRI ExecSync, `docker exec`) inside the VM.
 *
 * The host reaches the guest through virtio-serial ports named urunc.exec.N
 * (no vhost module needed). A port carries one exec at a time; concurrent
 * execs use different ports. The protocol (docs/exec-protocol.md) is frames
 * of `type:u8 length:u32be payload`, payload at most MAX_PAYLOAD bytes:
 *
 *   host -> guest  'R' request   NUL-terminated fields, see parse_request()
 *                  'K' stop      decimal signal for the application (init forwards it), instead of 'R':
 *                                answered 'X' "0" (the graceful stop of a container)
 *                  'I' stdin     bytes
 *                  'C' stdin closed
 *                  'S' signal    decimal signal number
 *                  'W' window    "ROWS COLS"
 *   guest -> host  'A' started   (empty): the process runs; the first answer to 'R'
 *                  'O' stdout    bytes
 *                  'E' stderr    bytes
 *                  'F' failed    a message, instead of 'A' (the process did not start); 'X' follows
 *                  'X' exit      decimal status: the exit code, or 128 + the signal
 *
 * The agent process polls the idle ports; a request forks a handler that owns
 * the port until its process has exited and its output is drained. A port
 * whose host side is not connected reports POLLHUP: it is left out of the poll
 * until the kernel's SIGIO says a host connected (and re-checked every second).
 * The host closing its side while the process runs kills the process.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define PORT_PREFIX "urunc.exec."
#define PORT_CLASS "/sys/class/virtio-ports"
#define MAX_PORTS 32
#define MAX_PAYLOAD 65536
#define MAX_FIELDS 8192
#define PROTOCOL "urunc-exec/1"

int exec_path(char **argv, char **envp); /* init.c */

struct port {
	char dev[32]; /* vportNpM */
	int fd;
	pid_t handler; /* 0: idle */
	int hup;       /* no host connected when last polled */
};

static struct port ports[MAX_PORTS];
static int nports;
static volatile sig_atomic_t got_sigio;

static void on_sigio(int sig)
{
	(void)sig;
	got_sigio = 1;
}

static void on_sigchld(int sig)
{
	(void)sig;
}

/* ---- frames --------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -1;
			if (pfd.revents & (POLLERR | POLLHUP))
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, char type, const void *data, size_t len)
{
	unsigned char head[5];

	head[0] = (unsigned char)type;
	head[1] = (unsigned char)(len >> 24);
	head[2] = (unsigned char)(len >> 16);
	head[3] = (unsigned char)(len >> 8);
	head[4] = (unsigned char)len;
	if (write_all(fd, head, sizeof(head)) < 0)
		return -1;
	return len ? write_all(fd, data, len) : 0;
}

static int send_text(int fd, char type, const char *text)
{
	return send_frame(fd, type, text, strlen(text));
}

/* Incoming bytes, cut into frames. */
struct reader {
	unsigned char buf[5 + MAX_PAYLOAD];
	size_t have;
};

/* Read what is there (the fd is non-blocking). 1: data or nothing, 0: EOF, -1: error. */
static int reader_fill(int fd, struct reader *r)
{
	ssize_t n;

	if (r->have == sizeof(r->buf))
		return 1;
	n = read(fd, r->buf + r->have, sizeof(r->buf) - r->have);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 1 : -1;
	if (n == 0)
		return 0;
	r->have += (size_t)n;
	return 1;
}

/* The next whole frame: its type (payload in *data, *len), 0 for none yet, -1 for a bad one. */
static int reader_next(struct reader *r, unsigned char **data, size_t *len, size_t *consumed)
{
	size_t size;

	if (r->have < 5)
		return 0;
	size = ((size_t)r->buf[1] << 24) | ((size_t)r->buf[2] << 16) | ((size_t)r->buf[3] << 8) | r->buf[4];
	if (size > MAX_PAYLOAD)
		return -1;
	if (r->have < 5 + size)
		return 0;
	*data = r->buf + 5;
	*len = size;
	*consumed = 5 + size;
	return r->buf[0];
}

static void reader_drop(struct reader *r, size_t consumed)
{
	memmove(r->buf, r->buf + consumed, r->have - consumed);
	r->have -= consumed;
}

/* ---- one exec --------------------------------------------------------------- */

struct request {
	int tty;
	unsigned short rows, cols;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	char *cwd;
	char **argv;
	char **envp;
};

/* Fields: PROTOCOL, tty 0|1, rows, cols, uid, gid, ngroups, groups..., cwd, argc, argv..., envc, env... */
static int parse_request(char *data, size_t len, struct request *q)
{
	char *fields[MAX_FIELDS];
	size_t n = 0, i = 0, k;
	long argc, envc, ng;

	if (len == 0 || data[len - 1] != '\0')
		return -1;
	for (k = 0; k < len && n < MAX_FIELDS; k += strlen(data + k) + 1)
		fields[n++] = data + k;
	if (k < len || n < 10 || strcmp(fields[i++], PROTOCOL) != 0)
		return -1;
	q->tty = atoi(fields[i++]) != 0;
	q->rows = (unsigned short)atoi(fields[i++]);
	q->cols = (unsigned short)atoi(fields[i++]);
	q->uid = (uid_t)strtoul(fields[i++], NULL, 10);
	q->gid = (gid_t)strtoul(fields[i++], NULL, 10);
	ng = atol(fields[i++]);
	if (ng < 0 || ng > 64 || i + (size_t)ng + 2 > n)
		return -1;
	q->ngroups = (int)ng;
	for (k = 0; k < (size_t)ng; k++)
		q->groups[k] = (gid_t)strtoul(fields[i++], NULL, 10);
	q->cwd = fields[i++];
	argc = atol(fields[i++]);
	if (argc < 1 || i + (size_t)argc + 1 > n)
		return -1;
	q->argv = calloc((size_t)argc + 1, sizeof(char *));
	for (k = 0; k < (size_t)argc; k++)
		q->argv[k] = fields[i++];
	envc = atol(fields[i++]);
	if (envc < 0 || i + (size_t)envc != n)
		return -1;
	q->envp = calloc((size_t)envc + 1, sizeof(char *));
	for (k = 0; k < (size_t)envc; k++)
		q->envp[k] = fields[i++];
	return 0;
}

/* Every signal's default action, none blocked: what a child of init or of the agent starts
 * from, whatever handlers and mask its parent had. */
static void default_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 1; i < NSIG; i++)
		sigaction(i, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The process itself (in the child): identity, directory, streams, exec. */
static void __attribute__((noreturn)) start_process(struct request *q, int in, int out, int err, int report)
{
	int e;
	const char *what;

	default_signals();
	setsid();
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (q->tty)
		ioctl(0, TIOCSCTTY, 0);
	what = "chdir";
	if (chdir(q->cwd) < 0)
		goto fail;
	what = "set user";
	if (setgroups((size_t)q->ngroups, q->groups) < 0 || setgid(q->gid) < 0 || setuid(q->uid) < 0)
		goto fail;
	e = exec_path(q->argv, q->envp);
	errno = e;
	what = "exec";
fail:
	e = errno;
	dprintf(report, "%s %s: %s", what, strcmp(what, "chdir") == 0 ? q->cwd : q->argv[0], strerror(e));
	_exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

static void set_blocking(int fd, int blocking)
{
	int flags = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

/* The handler: runs the request that came on PORT, relays its streams, reports its end. */
static void __attribute__((noreturn)) handle(int port, unsigned char *req, size_t len, struct reader *rest)
{
	struct request q;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2];
	int master = -1, to_child, status = 0, exited = 0;
	char msg[512];
	pid_t child;
	ssize_t n;

	memset(&q, 0, sizeof(q));
	if (parse_request((char *)req, len, &q) < 0) {
		send_text(port, 'F', "malformed exec request");
		send_text(port, 'X', "126");
		_exit(0);
	}
	if (q.tty) {
		char name[128];
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
		    ptsname_r(master, name, sizeof(name)) != 0 ||
		    (in[0] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
			snprintf(msg, sizeof(msg), "cannot open a terminal: %s", strerror(errno));
			send_text(port, 'F', msg);
			send_text(port, 'X', "126");
			_exit(0);
		}
		if (q.rows && q.cols) {
			struct winsize ws = {.ws_row = q.rows, .ws_col = q.cols};
			ioctl(master, TIOCSWINSZ, &ws);
		}
		out[1] = err[1] = in[0];
	} else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		send_text(port, 'F', "cannot make pipes");
		send_text(port, 'X', "126");
		_exit(0);
	}
	if (pipe2(report, O_CLOEXEC) < 0)
		_exit(1);
	child = fork();
	if (child == 0) {
		close(port);
		start_process(&q, in[0], out[1], err[1], report[1]);
	}
	close(report[1]);
	close(in[0]);
	if (!q.tty) {
		close(out[1]);
		close(err[1]);
	}
	if (child < 0) {
		send_text(port, 'F', "cannot fork");
		send_text(port, 'X', "126");
		_exit(0);
	}
	n = read(report[0], msg, sizeof(msg) - 1); /* EOF: exec'd (close-on-exec) */
	close(report[0]);
	if (n > 0) {
		msg[n] = '\0';
		send_text(port, 'F', msg);
	} else {
		send_frame(port, 'A', NULL, 0); /* started: the host waits a bounded time for this */
	}
	to_child = q.tty ? master : in[1];
	if (q.tty) {
		out[0] = master;
		err[0] = -1;
	}
	set_blocking(port, 0);
	for (;;) {
		struct pollfd p[3];
		unsigned char *data, buf[16384];
		size_t dlen, used;
		int type, i, ready, open_streams = 0;

		p[0].fd = port;
		p[0].events = POLLIN;
		p[1].fd = out[0];
		p[1].events = POLLIN;
		p[2].fd = err[0];
		p[2].events = POLLIN;
		for (i = 1; i < 3; i++)
			open_streams += p[i].fd >= 0;
		if (!open_streams && exited)
			break;
		if (!open_streams) { /* the streams are closed but the process lives on: wait for it */
			if (waitpid(child, &status, 0) == child)
				exited = 1;
			continue;
		}
		ready = poll(p, 3, exited ? 100 : 1000);
		if (ready < 0 && errno != EINTR)
			break;
		if (exited && ready == 0)
			break; /* the process is gone and nothing more came: what holds its streams is not it */
		if (!exited && waitpid(child, &status, WNOHANG) == child)
			exited = 1;
		for (i = 1; i < 3; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0) {
				if (send_frame(port, i == 1 ? 'O' : 'E', buf, (size_t)n) < 0)
					goto host_gone;
			} else if (n == 0 || errno != EINTR) { /* EOF, or EIO of a pty whose slave closed */
				close(p[i].fd);
				if (i == 1)
					out[0] = -1;
				else
					err[0] = -1;
			}
		}
		if (exited && p[1].fd >= 0 && !(p[1].revents & POLLIN) && q.tty) {
			close(master); /* a pty's other holders may keep it open: the process is what counts */
			out[0] = -1;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		type = reader_fill(port, rest);
		if (type <= 0)
			goto host_gone;
		while ((type = reader_next(rest, &data, &dlen, &used)) > 0) {
			if (type == 'I' && to_child >= 0)
				write_all(to_child, data, dlen);
			else if (type == 'C' && to_child >= 0) {
				if (q.tty) {
					write_all(to_child, "\004", 1);
				} else {
					close(to_child);
					to_child = -1;
				}
			} else if (type == 'S' && dlen < 8) {
				char text[8];
				memcpy(text, data, dlen);
				text[dlen] = '\0';
				if (atoi(text) > 0 && atoi(text) < NSIG)
					kill(child, atoi(text));
			} else if (type == 'W' && dlen < 32 && q.tty) {
				char text[32];
				unsigned rows = 0, cols = 0;
				memcpy(text, data, dlen);
				text[dlen] = '\0';
				if (sscanf(text, "%u %u", &rows, &cols) == 2) {
					struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
					ioctl(master, TIOCSWINSZ, &ws);
				}
			}
			reader_drop(rest, used);
		}
		if (type < 0)
			goto host_gone;
	}
	if (WIFSIGNALED(status))
		snprintf(msg, sizeof(msg), "%d", 128 + WTERMSIG(status));
	else
		snprintf(msg, sizeof(msg), "%d", WEXITSTATUS(status));
	set_blocking(port, 1);
	send_text(port, 'X', msg);
	_exit(0);
host_gone:
	/* Whoever asked is gone (killed, or sent garbage): so is the process. */
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	_exit(0);
}

/* ---- the agent --------------------------------------------------------------- */

/* The name QEMU gave virtio-serial port VPORT (vportNpM), without its newline: 0 while it
 * has none yet (it arrives through virtio_console's control queue, after the port). Also
 * job.c's, for the template's urunc.job port. */
int port_name(const char *vport, char name[64])
{
	char path[300];
	FILE *f;

	name[0] = '\0';
	if (strlen(vport) > 200)
		return 0;
	snprintf(path, sizeof(path), PORT_CLASS "/%s/name", vport);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(name, 64, f))
		name[0] = '\0';
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	return name[0] != '\0';
}

/* Open the urunc.exec.* ports not open yet; returns how many are open. A port once
 * opened stays open: closing it would make the kernel drop what a host already sent
 * (virtio_console discards a port's unread data on release). */
static int find_ports(void)
{
	DIR *d = opendir(PORT_CLASS);
	struct dirent *e;

	if (!d)
		return nports;
	while ((e = readdir(d)) && nports < MAX_PORTS) {
		char path[300], name[64] = "";
		int fd, i, known = 0;

		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(ports[0].dev))
			continue;
		for (i = 0; i < nports; i++)
			known |= strcmp(ports[i].dev, e->d_name) == 0;
		if (known)
			continue;
		if (!port_name(e->d_name, name) || strncmp(name, PORT_PREFIX, strlen(PORT_PREFIX)) != 0)
			continue; /* not ours, or its name has not arrived yet */
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETOWN, getpid());
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		ports[nports].fd = fd;
		ports[nports].handler = 0;
		ports[nports].hup = 0;
		strcpy(ports[nports].dev, e->d_name);
		nports++;
	}
	closedir(d);
	return nports;
}

static void __attribute__((noreturn)) agent(int wanted)
{
	struct sigaction sa;
	sigset_t blocked, waiting;
	int i, scans = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigio;
	sigaction(SIGIO, &sa, NULL);
	sa.sa_handler = on_sigchld;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGIO);
	sigaddset(&blocked, SIGCHLD);
	sigprocmask(SIG_BLOCK, &blocked, &waiting);
	sigdelset(&waiting, SIGIO);
	sigdelset(&waiting, SIGCHLD);
	/* The ports appear, and get their names, as virtio_console's control queue brings them
	 * in: the agent serves those it has while it looks for the rest (every 50 ms, for at
	 * most a minute). */
	for (;;) {
		struct pollfd p[MAX_PORTS];
		int map[MAX_PORTS], n = 0, any_hup = 0;
		struct timespec second = {1, 0}, scan = {0, 50000000};
		pid_t done;

		if (nports < wanted && scans < 1200) {
			find_ports();
			scans++;
		}

		while ((done = waitpid(-1, NULL, WNOHANG)) > 0)
			for (i = 0; i < nports; i++)
				if (ports[i].handler == done) {
					ports[i].handler = 0;
					ports[i].hup = 0;
				}
		if (got_sigio) {
			got_sigio = 0;
			for (i = 0; i < nports; i++)
				ports[i].hup = 0;
		}
		for (i = 0; i < nports; i++) {
			if (ports[i].handler)
				continue;
			if (ports[i].hup) {
				any_hup = 1;
				continue;
			}
			p[n].fd = ports[i].fd;
			p[n].events = POLLIN;
			map[n++] = i;
		}
		if (ppoll(p, (nfds_t)n, nports < wanted && scans < 1200 ? &scan : any_hup ? &second : NULL,
			  &waiting) <= 0) {
			if (any_hup)
				for (i = 0; i < nports; i++)
					ports[i].hup = 0; /* a missed SIGIO costs at most a second */
			continue;
		}
		for (i = 0; i < n; i++) {
			struct port *pt = &ports[map[i]];
			static struct reader r;
			unsigned char *data;
			size_t len, used;
			int type, rc, waited = 0;

			if (p[i].revents & POLLIN) {
				r.have = 0;
				/* One request, whole, within five seconds; anything else closes the exchange. */
				while ((type = reader_next(&r, &data, &len, &used)) == 0 && waited < 500) {
					rc = reader_fill(pt->fd, &r);
					if (rc <= 0)
						break;
					if (reader_next(&r, &data, &len, &used) == 0) {
						struct pollfd one = {.fd = pt->fd, .events = POLLIN};
						poll(&one, 1, 10);
						waited++;
					}
				}
				if (type == 'K' && len > 0 && len < 4) {
					char text[4];
					int sig;
					memcpy(text, data, len);
					text[len] = '\0';
					sig = atoi(text);
					if (sig > 0 && sig < NSIG)
						kill(1, sig); /* init forwards it to the application */
					send_text(pt->fd, 'X', sig > 0 && sig < NSIG ? "0" : "1"); /* write_all waits */
					pt->hup = 1;
					continue;
				}
				if (type != 'R') {
					pt->hup = 1; /* garbage or a partial frame: wait for the next host */
					continue;
				}
				pt->handler = fork();
				if (pt->handler == 0) {
					sigprocmask(SIG_SETMASK, &waiting, NULL);
					sa.sa_handler = SIG_DFL;
					sigaction(SIGIO, &sa, NULL);
					sigaction(SIGCHLD, &sa, NULL);
					sigprocmask(SIG_UNBLOCK, &blocked, NULL);
					unsigned char *req = malloc(len ? len : 1);
					memcpy(req, data, len);
					reader_drop(&r, used); /* moves what followed the request to the front */
					handle(pt->fd, req, len, &r);
				}
				if (pt->handler < 0)
					pt->handler = 0;
			} else if (p[i].revents & (POLLHUP | POLLERR)) {
				pt->hup = 1;
			}
		}
	}
}

/* The number of exec ports the runtime gave the VM (/.urunc/exec), 0 for none; read
 * before a new root hides the initramfs. */
int agent_ports(const char *count_file)
{
	FILE *f = fopen(count_file, "re");
	int wanted = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%d", &wanted) != 1 || wanted < 1 || wanted > MAX_PORTS)
		wanted = 0;
	fclose(f);
	return wanted;
}

/* Start the agent, a child of init that lives as long as the VM: forked once the
 * application runs, with init's signal handlers and mask undone. */
void agent_start(int wanted)
{
	if (wanted <= 0 || fork() != 0)
		return;
	default_signals();
	agent(wanted);
}
