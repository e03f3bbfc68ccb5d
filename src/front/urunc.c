/* urunc's front end: `urunc start`, `urunc state`, and the common cases of `kill` and `delete`
 * natively, every other command handed unchanged to the Python runtime (URUNC_PY, an entry
 * script) by execv; for `create` of a unikernel bundle it starts the container's init
 * (URUNC_INIT, an entry script), which does the create itself.
 *
 * Why: containerd runs `start` between `create` and the guest's first output, and
 * all `start` does is release the init through exec.fifo and wait until the init
 * has exec'd the monitor (EOF on the fifo) or reported an error (bytes on it).
 * Starting an interpreter for that costs ~15 ms here; this costs ~1 ms. `state`, which
 * containerd and kubelet poll, reads the record and prints what Python would, byte for byte.
 * `kill` is one signal under the container's lock, through a pidfd, to the recorded PID only
 * while its start time matches and it is in the container's cgroup; SIGTERM to a running
 * container is Python's (it asks the guest to power off through QMP first). `delete` of a stopped container
 * removes its cgroups and state directory; a tap to release, poststop hooks or a living
 * monitor make it Python's.
 *
 * Anything this program does not fully understand goes to Python, which gives
 * the exact answers and error messages: other commands, options, runc's
 * containers, a damaged record (one that is not a plain regular file, a symlink, a PID
 * without its start time), a container in a state the command does not
 * handle here, hooks, phase timestamps (URUNC_TIMESTAMPS). A container that does not exist at all
 * (no directory) is answered here, in Python's words. The protocol it shares with
 * src/urunc/lifecycle.py: <root>/<id>/urunc-state.json is a urunc container's record
 * (compact JSON: status, pid and pid_start of the init, ...); exec.fifo exists until start;
 * poststart marks a container whose poststart hooks Python must run; paused, a paused one.
 *
 * `create`: the init is a Python process of its own (src/urunc/init.py), cloned
 * here (as PID 1 of a new PID namespace when the spec asks for one) and given two pipes.
 * It does the create itself and reports a verdict line: "ok" (exit 0), "fail CODE" (it
 * has printed and logged the error), "runc PATH" (an ordinary bundle: exec runc), or
 * "python" (create hooks, joined namespaces: exec Python's create, which hands the init
 * its plan; URUNC_INIT="PID:REQUEST_FD:REPORT_FD:NEWPID").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef URUNC_PY
#define URUNC_PY "/usr/local/lib/urunc/urunc-py"
#endif
#ifndef URUNC_INIT
#define URUNC_INIT "/usr/local/lib/urunc/urunc-init"
#endif
#define START_TIMEOUT_MS (60 * 1000)
#define TEXT_MAX (1 << 20) /* the largest record or config.json read here; larger ones go to Python */

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

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
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

/* store.validate_id's rule (src/urunc/oci/store.py): runc's characters, at most NAME_MAX. */
#define MAX_ID_LENGTH 255
static int valid_id(const char *id)
{
    if (!*id || !strcmp(id, ".") || !strcmp(id, "..") || strlen(id) > MAX_ID_LENGTH)
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

/* -- `state`: the record (compact JSON written by Python) read back ---------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* End of the JSON value at P (just past it), or NULL if it is malformed. */
static const char *skip_value(const char *p)
{
    p = skip_ws(p);
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && !*++p)
                return NULL;
        return *p ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = skip_value(p)) || *(p = skip_ws(p)) != ':')
                    return NULL;
                p++;
            }
            if (!(p = skip_value(p)))
                return NULL;
            p = skip_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    const char *start = p;
    while (*p && strchr("+-.0123456789eEtruefalsn", *p))
        p++;
    return p > start ? p : NULL;
}

struct span {
    const char *at;
    size_t len;
};

/* The raw value of top-level KEY in OBJECT (a plain key: no escapes to compare). */
static int field(const char *object, const char *key, struct span *out)
{
    const char *p = skip_ws(object);
    size_t klen = strlen(key);
    if (*p++ != '{')
        return 0;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"')
            return 0;
        const char *k = p + 1, *end = skip_value(p);
        if (!end || *(p = skip_ws(end)) != ':')
            return 0;
        const char *v = skip_ws(p + 1);
        if (!(end = skip_value(v)))
            return 0;
        if ((size_t)(p - k) >= klen + 1 && !strncmp(k, key, klen) && k[klen] == '"' &&
            skip_ws(k + klen + 1) == p) {
            out->at = v;
            out->len = (size_t)(end - v);
            return 1;
        }
        p = skip_ws(end);
        if (*p++ != ',')
            return 0;
    }
}

static int is_string(struct span s) { return s.len >= 2 && s.at[0] == '"'; }

static int span_is(struct span s, const char *text)
{
    return s.len == strlen(text) && !strncmp(s.at, text, s.len);
}

/* The container's record (urunc-state.json, compact JSON written by Python), read back:
 * the fields `state` prints and `start` needs. 0 when it is not plainly one of ours
 * (runc's container, a damaged or half-written record): Python answers then. */
struct record {
    struct span status, bundle, rootfs, created, annotations, hooks; /* hooks: len 0 if absent */
    long pid;
    unsigned long long start; /* valid when pid > 0 */
};

/* PATH (relative to DFD) into the 1 MiB buffer TEXT, NUL-terminated: its length, or -1
 * when it cannot be read or does not fit. Only a regular file is read (a FIFO would block,
 * /dev/zero never end: _files.read_regular's rule); in a state directory (DFD not
 * AT_FDCWD) not through a symlink either. */
static long read_text(int dfd, const char *path, char *text)
{
    int fd = openat(dfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (dfd == AT_FDCWD ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return -1;
    struct stat st;
    int bad = fstat(fd, &st) ? errno : !S_ISREG(st.st_mode) ? EINVAL : st.st_size >= TEXT_MAX ? EFBIG : 0;
    if (bad) {
        close(fd);
        text[0] = 0;
        errno = bad;
        return -1;
    }
    size_t used = 0;
    ssize_t got = 0;
    while (used < TEXT_MAX && (got = read(fd, text + used, TEXT_MAX - used)) > 0)
        used += (size_t)got;
    int error = got < 0 ? errno : used < TEXT_MAX ? 0 : EFBIG;
    close(fd);
    text[used] = 0;
    errno = error; /* never a stale ENOENT: a caller takes that for "no such file" */
    return error ? -1 : (long)used;
}

static int read_record(int dfd, struct record *r)
{
    static char text[TEXT_MAX + 1];
    if (read_text(dfd, "urunc-state.json", text) <= 0)
        return 0;
    const char *whole = skip_value(text);
    if (!whole || *skip_ws(whole))
        return 0;
    struct span pid_s, start_s;
    if (!field(text, "status", &r->status) || !field(text, "pid", &pid_s) || !field(text, "pid_start", &start_s) ||
        !field(text, "bundle", &r->bundle) || !field(text, "rootfs", &r->rootfs) ||
        !field(text, "created", &r->created) || !field(text, "annotations", &r->annotations) ||
        !is_string(r->status) || !is_string(r->bundle) || !is_string(r->rootfs) || !is_string(r->created) ||
        r->annotations.at[0] != '{')
        return 0;
    if (!field(text, "hooks", &r->hooks))
        r->hooks.len = 0;
    char *end;
    r->pid = strtol(pid_s.at, &end, 10);
    if (end != pid_s.at + pid_s.len)
        return 0;
    r->start = strtoull(start_s.at, &end, 10);
    if (r->pid > 0 && end != start_s.at + start_s.len)
        return 0; /* no start time recorded (null): Python's rule */
    return 1;
}

/* A living, started container: "paused" while the mark `pause` writes is there
 * (src/urunc/host/freezer.py), else "running". */
static const char *running(int dfd)
{
    return faccessat(dfd, "paused", F_OK, 0) ? "running" : "paused";
}

/* The container's status as Python's Container.status() derives it from the record and
 * the init's liveness; Python for a status this does not know. */
static const char *status_of(int dfd, const struct record *r)
{
    long pid = r->pid;
    unsigned long long start = r->start;
    if (span_is(r->status, "\"stopped\""))
        return "stopped";
    if (span_is(r->status, "\"creating\""))
        return pid > 0 && alive(pid, start) ? "creating" : pid > 0 ? "stopped" : "creating";
    if (span_is(r->status, "\"created\""))
        return pid <= 0 || !alive(pid, start) ? "stopped"
               : faccessat(dfd, "exec.fifo", F_OK, 0) ? running(dfd) : "created";
    if (span_is(r->status, "\"running\""))
        return pid > 0 && alive(pid, start) ? running(dfd) : "stopped";
    python();
    return NULL;
}

/* The container's record, read under its lock (held until exit or exec): Python when
 * there is none to read plainly. */
static void locked_record(int dfd, struct record *r)
{
    if (flock(dfd, LOCK_EX) || !read_record(dfd, r))
        python();
}

/* `state ID`, as Python's `urunc state` prints it (json indent 2). */
static void native_state(int dfd, const char *id)
{
    struct record r;
    if (!read_record(dfd, &r))
        python();
    struct span bundle = r.bundle, rootfs = r.rootfs, created = r.created,
                annotations = r.annotations;
    long pid = r.pid;
    char *out_text = NULL;
    size_t out_size = 0;
    FILE *out = open_memstream(&out_text, &out_size); /* all or nothing: Python may yet answer */
    if (!out)
        python();
    const char *state = status_of(dfd, &r);
    if (!strcmp(state, "stopped"))
        pid = 0;

    fprintf(out, "{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": \"%s\",\n  \"status\": \"%s\",\n  \"pid\": %ld,\n",
           id, state, pid);
    fprintf(out, "  \"bundle\": %.*s,\n  \"rootfs\": %.*s,\n  \"created\": %.*s,\n  \"annotations\": ",
           (int)bundle.len, bundle.at, (int)rootfs.len, rootfs.at, (int)created.len, created.at);
    /* {"k":"v",...} → one "k": "v" per line; string values only (anything else: Python) */
    const char *p = skip_ws(annotations.at + 1);
    if (*p == '}') {
        fputs("{}", out);
    } else {
        fputs("{", out);
        for (int first = 1;; first = 0) {
            const char *k = p, *kend = skip_value(k);
            if (*k != '"' || !kend || *(p = skip_ws(kend)) != ':')
                python();
            const char *v = skip_ws(p + 1), *vend = skip_value(v);
            if (*v != '"' || !vend)
                python();
            fprintf(out, "%s\n    %.*s: %.*s", first ? "" : ",", (int)(kend - k), k, (int)(vend - v), v);
            p = skip_ws(vend);
            if (*p == '}')
                break;
            if (*p++ != ',')
                python();
            p = skip_ws(p);
        }
        fputs("\n  }", out);
    }
    fputs(",\n  \"owner\": \"\"\n}\n", out);
    if (fclose(out))
        python();
    if (fwrite(out_text, 1, out_size, stdout) != out_size || fflush(stdout))
        exit(1);
    exit(0);
}

/* -- `kill`: a signal to the monitor ------------------------------------------------------ */

/* SIGNAL by number (9) or name (KILL, SIGKILL, sigkill), as Python's parse_signal reads it;
 * -1 for anything else (real-time names, errors: Python's). */
static int signal_number(const char *text)
{
    static const char *const names[] = { /* by number; aliases after SYS */
        "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
        "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"};
    if (*text >= '0' && *text <= '9') {
        char *end;
        long n = strtol(text, &end, 10);
        return *end || n < 1 || n > 64 ? -1 : (int)n;
    }
    if (!strncasecmp(text, "SIG", 3))
        text += 3;
    for (int n = 1; n < (int)(sizeof names / sizeof *names); n++)
        if (!strcasecmp(text, names[n]))
            return n;
    if (!strcasecmp(text, "IOT"))
        return SIGABRT;
    if (!strcasecmp(text, "POLL"))
        return SIGIO;
    return -1;
}

static char *plain_string(const char *at, const char *end);

/* lifecycle.own_leaf and proc.in_cgroup: 1 when PID is in the first cgroup leaf recorded in
 * resources.json (or none is recorded: the container joined a cgroup that existed), 0 when it
 * is not (a start time copied from another process is not enough), -1 when this cannot be
 * read here. */
static int in_own_cgroup(int dfd, long pid)
{
    static char text[TEXT_MAX + 1];
    if (read_text(dfd, "resources.json", text) < 0)
        return errno == ENOENT ? 1 : -1;
    const char *p = skip_ws(text);
    if (*p++ != '[')
        return -1;
    char *leaf = NULL;
    for (p = skip_ws(p); *p == '{' && !leaf;) {
        const char *end = skip_value(p), *q, *qend;
        struct span kind, leaves;
        if (!end)
            return -1;
        if (field(p, "kind", &kind) && span_is(kind, "\"cgroup\"") && field(p, "leaves", &leaves) &&
            leaves.at[0] == '[' && *(q = skip_ws(leaves.at + 1)) == '"' &&
            (!(qend = skip_value(q)) || !(leaf = plain_string(q, qend))))
            return -1;
        p = skip_ws(end);
        if (*p == ',')
            p = skip_ws(p + 1);
    }
    if (!leaf)
        return 1;
    char path[4200];
    int fits = (size_t)snprintf(path, sizeof path, "%s/cgroup.procs", leaf) < sizeof path;
    free(leaf);
    if (!fits || read_text(AT_FDCWD, path, text) < 0)
        return -1;
    for (char *at = text, *end;; at = end) {
        long listed = strtol(at, &end, 10);
        if (end == at)
            return 0;
        if (listed == pid)
            return 1;
    }
}

/* `kill ID SIGNAL` of a created or running container: one kill(2) under the container's
 * lock, as Python's lifecycle.kill does it. SIGTERM to a running container is Python's (it
 * asks the guest to power off through QMP first), as is every error. */
static void native_kill(int dfd, int sig)
{
    struct record r;
    locked_record(dfd, &r);
    /* Taken before status_of checks the start time: the signal reaches the process checked,
     * never one that took its PID meanwhile (proc.send_signal's rule). */
    int pidfd = r.pid > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)r.pid, 0) : -1;
    if (pidfd < 0)
        python(); /* gone, or no pidfds: Python says what it is */
    const char *state = status_of(dfd, &r);
    if (strcmp(state, "created") && strcmp(state, "running"))
        python(); /* not running: Python's error, or nothing to do for --all */
    if (sig == SIGTERM && !strcmp(state, "running"))
        python();
    if (in_own_cgroup(dfd, r.pid) != 1 || syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0))
        python();
    exit(0);
}

/* -- `delete`: a stopped container's cgroups and state directory --------------------------- */

#define MAX_ENTRIES 16
#define MAX_DIRS 32

/* The JSON string S, without escapes, as a NUL-terminated copy; NULL for anything else. */
static char *plain_string(const char *at, const char *end)
{
    size_t len = (size_t)(end - at);
    if (len < 2 || at[0] != '"' || memchr(at, '\\', len))
        return NULL;
    return strndup(at + 1, len - 2);
}

/* The strings of the JSON array at P into OUT (at most MAX): their number, or -1. */
static int string_array(const char *p, char **out, int max)
{
    p = skip_ws(p);
    if (*p++ != '[')
        return -1;
    p = skip_ws(p);
    if (*p == ']')
        return 0;
    for (int n = 0;;) {
        const char *end = skip_value(p);
        if (!end || n == max || !(out[n++] = plain_string(p, end)))
            return -1;
        p = skip_ws(end);
        if (*p == ']')
            return n;
        if (*p++ != ',')
            return -1;
        p = skip_ws(p);
    }
}

struct cgroup_entry {
    char *dirs[MAX_DIRS], *leaves[MAX_DIRS];
    int ndirs, nleaves;
};

/* resources.json (host/resources.py): cgroup entries only, else Python releases them. */
static int read_resources(int dfd, struct cgroup_entry *entries)
{
    static char text[TEXT_MAX + 1];
    long len = read_text(dfd, "resources.json", text);
    if (len < 0)
        return errno == ENOENT ? 0 : -1;
    const char *p = skip_ws(text);
    if (*p++ != '[')
        return -1;
    p = skip_ws(p);
    if (*p == ']')
        return *skip_ws(p + 1) ? -1 : 0;
    for (int n = 0;;) {
        const char *end = skip_value(p);
        struct span kind, dirs, leaves;
        if (!end || n == MAX_ENTRIES || *p != '{' || !field(p, "kind", &kind) ||
            !span_is(kind, "\"cgroup\"") || !field(p, "dirs", &dirs) || !field(p, "leaves", &leaves) ||
            (entries[n].ndirs = string_array(dirs.at, entries[n].dirs, MAX_DIRS)) < 0 ||
            (entries[n].nleaves = string_array(leaves.at, entries[n].leaves, MAX_DIRS)) < 0)
            return -1;
        n++;
        p = skip_ws(end);
        if (*p == ']')
            return *skip_ws(p + 1) ? -1 : n;
        if (*p++ != ',')
            return -1;
        p = skip_ws(p);
    }
}

static int depth(const char *path)
{
    int n = 0;
    for (; *path; path++)
        n += *path == '/';
    return n;
}

/* A directory cgroups.checked would take: absolute, normalised, strictly below the cgroup
 * mounts' usual home (anywhere else: Python, which reads the real mounts, decides). */
static int cgroup_dir(const char *dir)
{
    static const char home[] = "/sys/fs/cgroup/";
    if (strncmp(dir, home, sizeof home - 1) || !dir[sizeof home - 1])
        return 0;
    for (const char *p = dir + sizeof home - 2; *p; p++)
        if (*p == '/' && (p[1] == '/' || p[1] == 0 || (p[1] == '.' && (p[2] == '/' || p[2] == 0 ||
                                                                       (p[2] == '.' && (p[3] == '/' || p[3] == 0))))))
            return 0;
    return 1;
}

/* cgroups.release: deepest first; a leaf may be busy while the dead monitor is reaped; an
 * ancestor shared with another container stays while not empty. 0, or -1 for Python. */
static int release_cgroup(struct cgroup_entry *e)
{
    for (int i = 0; i < e->ndirs; i++)
        if (!cgroup_dir(e->dirs[i]))
            return -1; /* not a cgroup of ours to remove: Python refuses it in words */
    for (int i = 1; i < e->ndirs; i++) /* stable, by depth, deepest first */
        for (int j = i; j > 0 && depth(e->dirs[j]) > depth(e->dirs[j - 1]); j--) {
            char *t = e->dirs[j];
            e->dirs[j] = e->dirs[j - 1];
            e->dirs[j - 1] = t;
        }
    for (int i = 0; i < e->ndirs; i++) {
        int leaf = 0;
        for (int j = 0; j < e->nleaves; j++)
            leaf |= !strcmp(e->leaves[j], e->dirs[i]);
        long long deadline = now_ms() + 2000;
        while (rmdir(e->dirs[i]) && errno != ENOENT) {
            if (errno == EBUSY && leaf && now_ms() < deadline) {
                usleep(10000);
                continue;
            }
            if (leaf || (errno != EBUSY && errno != ENOTEMPTY))
                return -1; /* Python tries again and says what stays */
            break;
        }
    }
    return 0;
}

/* Everything below the directory DFD but its entry KEEP (the state directory holds files,
 * and a Linux guest's files in a directory of their own). 0, or -1. */
static int empty_dir(int dfd, const char *keep)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int result = 0;
    struct dirent *e;
    while (!result && (e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && !strcmp(e->d_name, keep)))
            continue;
        if (!unlinkat(fd, e->d_name, 0) || errno == ENOENT)
            continue;
        int sub = errno == EISDIR ? openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        result = sub < 0 || empty_dir(sub, NULL) || (unlinkat(fd, e->d_name, AT_REMOVEDIR) && errno != ENOENT) ? -1 : 0;
        if (sub >= 0)
            close(sub);
    }
    closedir(dir);
    return result;
}

/* `delete ID` of a stopped container without poststop hooks, as Python's lifecycle.delete
 * does it: its cgroups, newest first, then its state directory. Anything else (a living
 * container, hooks, a tap to release, any error) is Python's; what was done here already
 * it finds done. */
static void native_delete(int dfd, const char *dir)
{
    struct record r;
    locked_record(dfd, &r);
    if (strcmp(status_of(dfd, &r), "stopped") ||
        (r.pid > 0 && alive(r.pid, r.start)) || (r.hooks.len && !span_is(r.hooks, "{}")))
        python(); /* (a record may say stopped while its PID lives: Python kills it first) */
    static struct cgroup_entry entries[MAX_ENTRIES];
    int n = read_resources(dfd, entries);
    if (n < 0)
        python();
    while (n--)
        if (release_cgroup(&entries[n]))
            python();
    /* The record goes last: if anything stops this half-way, Python still finds the container. */
    if (empty_dir(dfd, "urunc-state.json") || (unlinkat(dfd, "urunc-state.json", 0) && errno != ENOENT) ||
        (rmdir(dir) && errno != ENOENT))
        python();
    exit(0);
}

/* Whether BUNDLE looks like a unikernel's (annotations in config.json, or /urunc.json in
 * the usual rootfs) and, if so, whether its spec asks for a new PID namespace. A wrong
 * guess costs nothing but time: Python decides for real and starts another init. */
static int unikernel_bundle(const char *bundle, int *new_pid_ns)
{
    char path[4096];
    static char text[TEXT_MAX + 1];
    *new_pid_ns = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", bundle) >= sizeof path ||
        read_text(AT_FDCWD, path, text) < 0)
        return 0;
    if (!strstr(text, "com.urunc.unikernel.") &&
        ((size_t)snprintf(path, sizeof path, "%s/rootfs/urunc.json", bundle) >= sizeof path ||
         access(path, F_OK) != 0))
        return 0;
    /* linux.namespaces: [{"type": "pid"} (no path, or "")] means a new one */
    struct span linux_, namespaces;
    if (!field(text, "linux", &linux_) || linux_.at[0] != '{' || !field(linux_.at, "namespaces", &namespaces) ||
        namespaces.at[0] != '[')
        return 1;
    const char *p = skip_ws(namespaces.at + 1);
    while (*p == '{') {
        const char *end = skip_value(p);
        struct span type, ns_path;
        if (!end)
            return 1;
        if (field(p, "type", &type) && span_is(type, "\"pid\"")) {
            *new_pid_ns = !field(p, "path", &ns_path) || span_is(ns_path, "\"\"");
            return 1;
        }
        p = skip_ws(end);
        if (*p != ',')
            break;
        p = skip_ws(p + 1);
    }
    return 1;
}

/* `create`: the init of a unikernel bundle, started here (see the top of this file)
 * already in its new PID namespace when the spec asks for one: that namespace's PID 1
 * from the start, with no intermediate process. It runs `create` itself and reports a
 * verdict on the report pipe; this process, containerd's `create`, just relays it. */
static void create(int argc, char **argv, int command)
{
    const char *bundle = ".";
    int new_pid_ns;
    for (int i = command + 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (option(a, "--bundle") || option(a, "-b")) {
            const char *eq = strchr(a, '=');
            if (eq)
                bundle = eq + 1;
            else if (i + 1 < argc)
                bundle = argv[++i];
        }
    }
    if (!unikernel_bundle(bundle, &new_pid_ns))
        python();
    int request[2], report[2];
    if (pipe2(request, O_CLOEXEC))
        python();
    if (pipe2(report, O_CLOEXEC))
        python();
    pid_t pid = -1;
    if (new_pid_ns)
        pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) {
        new_pid_ns = 0;
        pid = fork();
    }
    if (pid < 0)
        python();
    char fds[64];
    if (pid == 0) {
        char **init_argv = calloc((size_t)argc + 2, sizeof *init_argv);
        if (!init_argv)
            _exit(127);
        snprintf(fds, sizeof fds, "%d:%d:%d", request[0], report[1], new_pid_ns);
        fcntl(request[0], F_SETFD, 0); /* these two survive the exec */
        fcntl(report[1], F_SETFD, 0);
        init_argv[0] = URUNC_INIT;
        init_argv[1] = fds;
        for (int i = 1; i < argc; i++)
            init_argv[i + 1] = argv[i];
        execv(URUNC_INIT, init_argv);
        _exit(127);
    }
    close(request[0]);
    close(report[1]);

    char verdict[4200];
    size_t used = 0;
    ssize_t got;
    while (used < sizeof verdict - 1 && (got = read(report[0], verdict + used, sizeof verdict - 1 - used)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)got;
        if (memchr(verdict, '\n', used))
            break;
    }
    verdict[used] = 0;
    char *nl = strchr(verdict, '\n');
    if (!nl) { /* the init died before a verdict: Python creates, with an init of its own */
        close(request[1]);
        close(report[0]);
        waitpid(pid, NULL, 0);
        python();
    }
    *nl = 0;
    if (!strcmp(verdict, "ok"))
        exit(0);
    if (!strncmp(verdict, "fail ", 5))
        exit(atoi(verdict + 5) ? atoi(verdict + 5) : 1); /* the init printed and logged why */
    if (!strncmp(verdict, "runc ", 5)) {
        waitpid(pid, NULL, 0);
        argv[0] = "runc";
        execv(verdict + 5, argv);
        fail("cannot run %s: %s", verdict + 5, strerror(errno));
    }
    /* "python": hooks, or a PID namespace it cannot enter itself; the init waits for a
     * request from Python's create, handed over with the pipes. */
    fcntl(request[1], F_SETFD, 0);
    fcntl(report[0], F_SETFD, 0);
    char value[96];
    snprintf(value, sizeof value, "%d:%d:%d:%d", (int)pid, request[1], report[0], new_pid_ns);
    setenv("URUNC_INIT", value, 1);
    python();
}

/* `start ID`: release the init through exec.fifo and wait until it has exec'd the monitor
 * (EOF) or reported an error (bytes on the fifo). */
static void native_start(int dfd, const char *id)
{
    if (!faccessat(dfd, "poststart", F_OK, 0))
        python(); /* hooks to run */
    struct record r;
    locked_record(dfd, &r);
    if (!span_is(r.status, "\"created\"") || r.pid <= 0 || !alive(r.pid, r.start))
        python(); /* not a created one: Python says what it is */
    long pid = r.pid;
    unsigned long long start = r.start;
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
    exit(0);
}

int main(int argc, char **argv)
{
    const char *root = "/run/urunc";
    int i = 1;

    g_argv = argv;
    unsetenv("URUNC_INIT"); /* ours to set, never inherited */
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
    if (i < argc && !strcmp(argv[i], "create"))
        create(argc, argv, i);
    if (getenv("URUNC_TIMESTAMPS"))
        python();
    const char *command = i < argc ? argv[i] : "", *id = NULL;
    int sig = 0;
    if (!strcmp(command, "kill")) { /* kill [--all|-a] ID [SIGNAL] */
        int at = i + 1;
        if (at < argc && (!strcmp(argv[at], "--all") || !strcmp(argv[at], "-a")))
            at++;
        if (at < argc && argc - at <= 2 &&
            (sig = at + 1 < argc ? signal_number(argv[at + 1]) : SIGTERM) > 0)
            id = argv[at];
    } else if (!strcmp(command, "delete")) { /* delete [--force|-f] ID: a stopped one, either way */
        int at = i + 1;
        if (at + 1 < argc && (!strcmp(argv[at], "--force") || !strcmp(argv[at], "-f")))
            at++;
        if (at + 1 == argc)
            id = argv[at];
    } else if (!strcmp(command, "start") || !strcmp(command, "state")) {
        if (i + 2 == argc)
            id = argv[i + 1];
    }
    if (!id || id[0] == '-' || !valid_id(id))
        python(); /* another command, or an option where the ID belongs: Python's parser says */

    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, id) >= sizeof dir)
        python();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT)
        fail("container %s does not exist", id); /* ours or runc's: neither has it */
    if (dfd < 0)
        python();
    if (!strcmp(command, "kill"))
        native_kill(dfd, sig);
    if (!strcmp(command, "delete"))
        native_delete(dfd, dir);
    if (!strcmp(command, "state"))
        native_state(dfd, id);
    native_start(dfd, id);
}
