/* urunc's front end: `urunc start` natively, every other command handed unchanged to
 * the Python runtime (URUNC_PY, an entry script) by execv.
 *
 * Why: containerd runs `start` between `create` and the guest's first output, and
 * all `start` does is release the init through exec.fifo and wait until the init
 * has exec'd the monitor (EOF on the fifo) or reported an error (bytes on it).
 * Starting an interpreter for that costs ~15 ms here; this costs ~1 ms.
 *
 * Anything this program does not fully understand goes to Python, which gives
 * the exact answers and error messages: other commands, options, runc's
 * containers, a missing state, a container that is not `created`, poststart
 * hooks, phase timestamps (URUNC_TIMESTAMPS). The protocol it shares with
 * src/urunc/lifecycle.py: <root>/<id>/urunc-state.json marks a urunc container;
 * init.pid holds "PID STARTTIME" of the init; exec.fifo exists until start;
 * poststart marks a container whose poststart hooks Python must run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#ifndef URUNC_PY
#define URUNC_PY "/usr/local/lib/urunc/urunc-py"
#endif
#define START_TIMEOUT_MS (60 * 1000)

static char **g_argv;
static const char *g_log;
static int g_log_json;

static void python(void)
{
    execv(URUNC_PY, g_argv);
    fprintf(stderr, "urunc: cannot run %s: %s\n", URUNC_PY, strerror(errno));
    exit(1);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* One line on stderr and in the --log file, as the Python runtime writes them. */
static void fail(const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    fprintf(stderr, "urunc: %s\n", msg);
    if (g_log) {
        FILE *f = fopen(g_log, "ae");
        if (f) {
            char stamp[64];
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", gmtime(&ts.tv_sec));
            snprintf(stamp + strlen(stamp), sizeof stamp - strlen(stamp), ".%09ldZ", ts.tv_nsec);
            if (g_log_json) {
                fputs("{\"level\":\"error\",\"msg\":", f);
                json_string(f, msg);
                fprintf(f, ",\"time\":\"%s\"}\n", stamp);
            } else {
                fprintf(f, "time=\"%s\" level=error msg=", stamp);
                json_string(f, msg);
                fputc('\n', f);
            }
            fclose(f);
        }
    }
    exit(1);
}

/* Is PID still the process that started at START (not a zombie, not a reused PID)? */
static int alive(long pid, unsigned long long start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2;
    char state = *p;
    if (state == 'Z' || state == 'X' || state == 'x')
        return 0;
    for (int field = 3; field < 22; field++) { /* field 22 is the start time */
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoull(p, NULL, 10) == start;
}

static int valid_id(const char *id)
{
    if (!*id || !strcmp(id, ".") || !strcmp(id, "..") || strlen(id) > 1024)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_+-.", *p)))
            return 0;
    return 1;
}

/* A runc-style option NAME given as "NAME" or "NAME=VALUE" (not merely a prefix: --rootless). */
static int option(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return !strncmp(arg, name, len) && (arg[len] == 0 || arg[len] == '=');
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    const char *root = "/run/urunc";
    int i = 1;

    g_argv = argv;
    if (getenv("URUNC_TIMESTAMPS"))
        python();
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        const char *fmt = NULL;
        if (option(a, "--root"))
            value = &root;
        else if (option(a, "--log-format"))
            value = &fmt;
        else if (option(a, "--log"))
            value = &g_log;
        else if (strcmp(a, "--debug") && strcmp(a, "--systemd-cgroup"))
            python(); /* --version, --help, anything unknown */
        if (value) {
            const char *eq = strchr(a, '=');
            if (eq)
                *value = eq + 1;
            else if (i + 1 < argc)
                *value = argv[++i];
            else
                python();
            if (fmt) {
                if (!strcmp(fmt, "json"))
                    g_log_json = 1;
                else if (strcmp(fmt, "text"))
                    python();
            }
        }
    }
    if (i + 2 != argc || strcmp(argv[i], "start") || !valid_id(argv[i + 1]))
        python();
    const char *id = argv[i + 1];

    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, id) >= sizeof dir)
        python();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        python();
    if (faccessat(dfd, "urunc-state.json", F_OK, 0) || !faccessat(dfd, "poststart", F_OK, 0))
        python(); /* runc's container, or hooks to run */
    if (flock(dfd, LOCK_EX))
        python();

    long pid = 0;
    unsigned long long start = 0;
    char buf[128];
    int pfd = openat(dfd, "init.pid", O_RDONLY | O_CLOEXEC);
    ssize_t n = pfd >= 0 ? read(pfd, buf, sizeof buf - 1) : -1;
    if (pfd >= 0)
        close(pfd);
    if (n <= 0)
        python();
    buf[n] = 0;
    if (sscanf(buf, "%ld %llu", &pid, &start) != 2 || pid <= 0 || !alive(pid, start))
        python(); /* not a created container: Python says what it is */
    int fifo = openat(dfd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0)
        python(); /* started already */

    char message[4000];
    size_t used = 0;
    long long deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {.fd = fifo, .events = POLLIN};
        int ready = poll(&p, 1, 50);
        if (ready > 0) {
            ssize_t got = read(fifo, message + used, sizeof message - 1 - used);
            if (got > 0) {
                used += (size_t)got;
                if (used < sizeof message - 1)
                    continue;
            }
            if (got < 0 && errno == EAGAIN)
                continue;
            break; /* EOF: the init exec'd the monitor (or died); or the message is full */
        }
        if (!alive(pid, start))
            break;
        if (now_ms() > deadline)
            fail("container %s did not start within %ds", id, START_TIMEOUT_MS / 1000);
    }
    close(fifo);
    unlinkat(dfd, "exec.fifo", 0);
    message[used] = 0;
    if (used)
        fail("%s", message);
    if (!alive(pid, start))
        fail("container %s init exited before start", id);
    return 0;
}
