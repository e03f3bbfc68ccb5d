/* urunc's front end: mechanisms only, on the paths containerd waits on, where an
 * interpreter's start-up (~13 ms here) would be most of the time; every rule is Python's.
 * Every command but these is handed unchanged to the Python runtime (URUNC_PY, an entry
 * script) by execv, and so is anything this program does not plainly understand.
 *
 * `state ID` (~1 ms here; Python ~13 ms, runc ~5 ms): prints the answer Python rendered when
 * it saved the container's record (<root>/<id>/state-answer, see src/urunc/oci/store.py),
 * choosing among its variants by three facts of the host only known when asked: is the
 * recorded init alive (its PID with the same start time, not a zombie), is exec.fifo there,
 * is the paused mark there. The answer names the record it was rendered from by its
 * digest and size: when the record changed since (a foreign writer, a crash between the
 * two writes), or the answer is missing or not exactly in its form (half-written), Python
 * answers.
 *
 * `start ID` (~1 ms; Python ~15 ms): releases the init through exec.fifo and waits until
 * it has exec'd the monitor (EOF on the fifo) or reported an error (bytes on it). Whether
 * the container may be started here is in the same answer; anything else (another status,
 * poststart hooks, phase timestamps) is Python's. An outcome other than success is Python's
 * to report: it is handed over on a pipe named by URUNC_FRONT_START (src/urunc/commands/start.py),
 * so the words, the record's update and the --log line are Python's alone.
 *
 * `delete [--force] ID` (~1 ms; Python ~12 ms, runc ~8 ms; containerd runs it twice at the end
 * of every `ctr run --rm`: ~22 ms of a warm Linux guest's ~310): for a stopped container,
 * the plan Python rendered beside the answer (<root>/<id>/delete-answer, bound to the record
 * and to resources.json by their digests and sizes): which cgroup directories to remove, in
 * which order, and for which facts it holds. Anything else, and any step that fails, is
 * Python's. `delete --force` of an ID (Python's rule, passed in by the build) with no
 * directory succeeds, as runc's does.
 *
 * `create`: the init is a Python process of its own (src/urunc/init.py), cloned
 * here (as PID 1 of a new PID namespace when the spec asks for one) and given two pipes.
 * It does the create itself and reports a verdict line: "ok" (exit 0), "fail CODE" (it
 * has printed and logged the error), "runc PATH" (an ordinary bundle: exec runc), or
 * "python" (create hooks, joined namespaces: exec Python's create, which hands the init
 * its plan; URUNC_INIT="PID:REQUEST_FD:REPORT_FD:NEWPID"). Whether the spec asks for a new
 * PID namespace must be known before the clone, from config.json, hence the small JSON
 * scanner below: the only one here. Without it every such create takes the two-process path
 * (measured: 29.6 ms against 16.0 ms for the hello bundle). A wrong guess the safe way (no
 * new namespace) costs that much; it never guesses the other way (tests/front holds it to
 * Python's reading of the spec).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#ifndef START_TIMEOUT_MS
#error "START_TIMEOUT_MS is urunc.lifecycle.START_TIMEOUT in ms: packaging/install.sh passes it"
#endif
#if !defined(ID_CHARS) || !defined(ID_MAX)
#error "ID_CHARS and ID_MAX are urunc.oci.store's container ID rule: packaging/install.sh passes them"
#endif
#define TEXT_MAX (1 << 20) /* the largest record, answer or config.json read here; larger ones go to Python */
#define ANSWER_FILE "state-answer"
#define ANSWER_FORMAT "urunc-answer-1"
#define RECORD_FILE "urunc-state.json"
#define DELETE_FILE "delete-answer"
#define DELETE_FORMAT "urunc-delete-1"
#define RESOURCES_FILE "resources.json"
#define FACTS 8

static char **g_argv;

static void python(void)
{
    execv(URUNC_PY, g_argv);
    fprintf(stderr, "urunc: cannot run %s: %s\n", URUNC_PY, strerror(errno));
    exit(1);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Is PID still the process that started at START (not exiting or a zombie, not a reused
 * PID)? proc.is_alive's mechanism (src/urunc/host/proc.py). */
static int alive(unsigned long long pid, unsigned long long start)
{
    char path[64], buf[1024];
    if (pid == 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%llu/stat", pid);
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
    for (int field = 3; field < 22; field++) { /* field 9 holds the flags, 22 the start time */
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
        if (field == 8 && strtoull(p, NULL, 10) & 0x4) /* PF_EXITING */
            return 0;
    }
    return strtoull(p, NULL, 10) == start;
}

/* A runc-style option NAME given as "NAME" or "NAME=VALUE" (not merely a prefix: --rootless). */
static int option(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return !strncmp(arg, name, len) && (arg[len] == 0 || arg[len] == '=');
}

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
    errno = error;
    return error ? -1 : (long)used;
}

/* -- the answer Python rendered (store.Container.answer) -------------------------------- */

/* The record read as one big-endian number, modulo the prime 2^61 - 1 (store.record_digest). */
static unsigned long long digest(const unsigned char *p, size_t n)
{
    const unsigned long long prime = (1ULL << 61) - 1;
    unsigned long long h = 0;
    while (n--) {
        h = ((h << 8) & prime) + (h >> 53) + *p++; /* h * 256 + byte, as 2^61 = 1 (mod prime) */
        if (h >= prime)
            h -= prime;
    }
    return h;
}

/* The token at *P (up to a space or the newline that ends the header), P moved past the space. */
static const char *token(const char **p, size_t *len)
{
    const char *start = *p, *end = start;
    while (*end && *end != ' ' && *end != '\n')
        end++;
    *len = (size_t)(end - start);
    *p = *end == ' ' ? end + 1 : end;
    return *len ? start : NULL;
}

/* Whether the token at *P is WORD (P moved past it either way). */
static int word_is(const char **p, const char *word)
{
    size_t len;
    const char *t = token(p, &len);
    return t && len == strlen(word) && !memcmp(t, word, len);
}

/* The decimal number at *P, at most MAX: 0, or -1 when it is anything else. */
static int number(const char **p, unsigned long long max, unsigned long long *out)
{
    size_t len;
    const char *t = token(p, &len);
    if (!t || len > 20)
        return -1;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9' || v > (max - (unsigned long long)(t[i] - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned long long)(t[i] - '0');
    }
    *out = v;
    return 0;
}

struct answer {
    unsigned long long sum, size;    /* the record it was rendered from */
    unsigned long long pid, start;   /* the process whose liveness is checked (0: none) */
    const char *head, *tail, *middle[FACTS];
    size_t head_len, tail_len, middle_len[FACTS];
    int startable[FACTS];            /* `start` may run here */
};

/* The answer for container ID in DFD, when it is exactly in its form and rendered from
 * the record there now: 1, else 0 (Python answers). */
static int read_answer(int dfd, const char *id, struct answer *a)
{
    static char record[TEXT_MAX + 1], text[TEXT_MAX + 1];
    long record_len = read_text(dfd, RECORD_FILE, record);
    long text_len = read_text(dfd, ANSWER_FILE, text);
    if (record_len < 0 || text_len < 0)
        return 0;
    const char *p = text, *t;
    size_t len;
    unsigned long long sum, size, head, tail, total;
    if (!word_is(&p, ANSWER_FORMAT) || !word_is(&p, id) || number(&p, (1ULL << 61) - 2, &sum) || number(&p, TEXT_MAX, &size) ||
        number(&p, INT32_MAX, &a->pid) || number(&p, INT64_MAX, &a->start) ||
        number(&p, TEXT_MAX, &head) || number(&p, TEXT_MAX, &tail))
        return 0;
    total = head + tail;
    for (int i = 0; i < FACTS; i++) {
        unsigned long long middle;
        if (number(&p, TEXT_MAX, &middle) || !(t = token(&p, &len)) || len != 1 || (*t != 's' && *t != '-'))
            return 0;
        a->middle_len[i] = (size_t)middle;
        a->startable[i] = *t == 's';
        total += middle;
    }
    if (*p != '\n' || (unsigned long long)(text + text_len - (p + 1)) != total ||
        size != (unsigned long long)record_len || sum != digest((const unsigned char *)record, (size_t)record_len))
        return 0;
    a->sum = sum;
    a->size = size;
    a->head = p + 1;
    a->head_len = (size_t)head;
    const char *at = a->head + head;
    for (int i = 0; i < FACTS; i++) {
        a->middle[i] = at;
        at += a->middle_len[i];
    }
    a->tail = at;
    a->tail_len = (size_t)tail;
    return 1;
}

/* Which of the answer's variants the host's facts select. */
static int facts(int dfd, const struct answer *a)
{
    return (alive(a->pid, a->start) ? 1 : 0) | (faccessat(dfd, "exec.fifo", F_OK, 0) ? 0 : 2) |
           (faccessat(dfd, "paused", F_OK, 0) ? 0 : 4);
}

/* `state ID`: the variant of the answer the facts select, as Python's `urunc state` prints it. */
static void native_state(int dfd, const char *id)
{
    struct answer a;
    if (!read_answer(dfd, id, &a))
        python();
    int i = facts(dfd, &a);
    if (fwrite(a.head, 1, a.head_len, stdout) != a.head_len ||
        fwrite(a.middle[i], 1, a.middle_len[i], stdout) != a.middle_len[i] ||
        fwrite(a.tail, 1, a.tail_len, stdout) != a.tail_len || fflush(stdout))
        exit(1);
    exit(0);
}

/* -- `create`: the init, started here ---------------------------------------------------- */

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

/* The raw value of KEY in OBJECT, the last one given as Python's json takes it: 1, 0 when
 * there is none, -1 when it cannot be told here (a malformed object, a key with escapes). */
static int field(const char *object, const char *key, struct span *out)
{
    const char *p = skip_ws(object);
    size_t klen = strlen(key);
    int found = 0;
    if (*p++ != '{')
        return -1;
    if (*(p = skip_ws(p)) == '}')
        return 0;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"')
            return -1;
        const char *k = p + 1, *end = skip_value(p);
        if (!end || memchr(k, '\\', (size_t)(end - k)) || *(p = skip_ws(end)) != ':')
            return -1;
        const char *v = skip_ws(p + 1);
        if (!(end = skip_value(v)))
            return -1;
        if ((size_t)(p - k) >= klen + 1 && !strncmp(k, key, klen) && k[klen] == '"' &&
            skip_ws(k + klen + 1) == p) {
            out->at = v;
            out->len = (size_t)(end - v);
            found = 1;
        }
        p = skip_ws(end);
        if (*p == '}')
            return found;
        if (*p++ != ',')
            return -1;
    }
}

static int span_is(struct span s, const char *text)
{
    return s.len == strlen(text) && !strncmp(s.at, text, s.len);
}

/* Whether BUNDLE looks like a unikernel's (annotations in config.json, or /urunc.json in
 * the usual rootfs) and, if so, whether its spec asks for a new PID namespace as Python reads
 * it (oci/spec.py: a "pid" entry whose path is absent or ""). A wrong guess costs nothing but
 * time as long as it is never "new" for a spec that does not ask for one: Python decides
 * for real, and starts another init when this one cannot serve. */
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
    struct span linux_, namespaces, type, ns_path;
    if (field(text, "linux", &linux_) != 1 || linux_.at[0] != '{' ||
        field(linux_.at, "namespaces", &namespaces) != 1 || namespaces.at[0] != '[')
        return 1;
    int wanted = 0;
    const char *p = skip_ws(namespaces.at + 1);
    while (*p == '{') {
        const char *end = skip_value(p);
        int has_type = field(p, "type", &type), has_path = field(p, "path", &ns_path);
        if (!end || has_type < 0 || has_path < 0)
            return 1; /* cannot be told here: no new namespace */
        if (has_type && span_is(type, "\"pid\"") && (!has_path || span_is(ns_path, "\"\"")))
            wanted = 1;
        p = skip_ws(end);
        if (*p != ',')
            break;
        p = skip_ws(p + 1);
    }
    *new_pid_ns = *p == ']' && wanted; /* every entry read */
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
        char *self = argv[0];
        waitpid(pid, NULL, 0);
        argv[0] = "runc";
        execv(verdict + 5, argv);
        argv[0] = self;
        python(); /* Python's create finds the same runc, fails the same way, and says so */
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

/* -- `start` ------------------------------------------------------------------------------ */

/* An outcome of `start` other than success, handed to Python's `start` (which records it,
 * and reports it in its words, on stderr and in the --log file): KIND ("message", "exited",
 * "timeout"), then the init's message, on a pipe named by URUNC_FRONT_START. */
static void report(const char *kind, const char *message, size_t len)
{
    int fds[2];
    char value[32];
    if (pipe2(fds, O_CLOEXEC) == 0) { /* (the message fits a pipe: at most START_MESSAGE_MAX) */
        if (write(fds[1], kind, strlen(kind)) == (ssize_t)strlen(kind) && write(fds[1], "\n", 1) == 1 &&
            (!len || write(fds[1], message, len) == (ssize_t)len) && !fcntl(fds[0], F_SETFD, 0)) {
            snprintf(value, sizeof value, "%d", fds[0]);
            setenv("URUNC_FRONT_START", value, 1);
        }
        close(fds[1]);
    }
    python(); /* without the variable (no pipe): Python says the container was started already */
}

#define START_MESSAGE_MAX 60000 /* below a pipe's 64 KiB: report() writes it before anyone reads */

/* `start ID`: release the init through exec.fifo and wait until it has exec'd the monitor
 * (EOF) or reported an error (bytes on the fifo), under the container's lock, as Python's
 * lifecycle.start does. */
static void native_start(int dfd, const char *id)
{
    struct answer a;
    if (flock(dfd, LOCK_EX) || !read_answer(dfd, id, &a) || !a.startable[facts(dfd, &a)])
        python(); /* not a created one, or hooks to run: Python's */
    int fifo = openat(dfd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0)
        python(); /* started already */

    static char message[START_MESSAGE_MAX];
    size_t used = 0;
    long long deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {.fd = fifo, .events = POLLIN};
        int ready = poll(&p, 1, 50);
        if (ready > 0) {
            ssize_t got = read(fifo, message + used, sizeof message - used);
            if (got > 0) {
                used += (size_t)got;
                if (used < sizeof message)
                    continue;
            }
            if (got < 0 && errno == EAGAIN)
                continue;
            break; /* EOF: the init exec'd the monitor (or died); or the message is full */
        }
        if (!alive(a.pid, a.start))
            break;
        if (now_ms() > deadline) {
            close(fifo);
            report("timeout", NULL, 0);
        }
    }
    close(fifo);
    unlinkat(dfd, "exec.fifo", 0);
    /* The init writes one NUL right before its execve: after it, the monitor runs (however
     * soon it ends); a message after it is an execve that failed. */
    int execd = used > 0 && message[0] == '\0';
    if (execd)
        memmove(message, message + 1, --used);
    if (used)
        report("message", message, used);
    if (!execd && !alive(a.pid, a.start))
        report("exited", NULL, 0);
    exit(0);
}

/* -- `delete`: the plan Python rendered (store.Container.delete_answer) ------------------- */

/* A path of the plan this program removes a directory at: absolute, with no empty, "." or
 * ".." component (a plan so written is Python's to refuse in its own words). */
static int plain_path(const char *p, size_t len)
{
    if (len < 2 || p[0] != '/' || p[len - 1] == '/')
        return 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (p[i] == '/' && (p[i + 1] == '/' || p[i + 1] == '.'))
            return 0;
    return memchr(p, 0, len) == NULL;
}

/* `delete [--force] ID` of a stopped container: remove the cgroup directories named by the
 * plan Python rendered with the record (delete-answer), then the state directory; whenever
 * the plan does not hold exactly (another record, a resources.json changed since, the init
 * alive, hooks to run), or a step does not go as planned, Python deletes. Everything done
 * here before that is what Python's delete does first too: it finds it done. The record
 * goes last, so Python still finds the container. */
static void native_delete(int dfd, const char *id, const char *dir)
{
    static char text[TEXT_MAX + 1], resources[TEXT_MAX + 1];
    struct answer a;
    if (flock(dfd, LOCK_EX) || !read_answer(dfd, id, &a))
        python();
    int fact = facts(dfd, &a);
    long text_len = read_text(dfd, DELETE_FILE, text);
    long res_len = read_text(dfd, RESOURCES_FILE, resources);
    if (res_len < 0 && errno == ENOENT)
        res_len = 0;
    if (text_len < 0 || res_len < 0)
        python();
    const char *p = text, *t;
    size_t len;
    unsigned long long sum, size, res_sum, res_size, count;
    if (!word_is(&p, DELETE_FORMAT) || !word_is(&p, id) || number(&p, (1ULL << 61) - 2, &sum) || number(&p, TEXT_MAX, &size) ||
        number(&p, (1ULL << 61) - 2, &res_sum) || number(&p, TEXT_MAX, &res_size) ||
        !(t = token(&p, &len)) || len != FACTS || t[fact] != 'd' || number(&p, 4096, &count) || *p != '\n' ||
        sum != a.sum || size != a.size || res_size != (unsigned long long)res_len ||
        res_sum != digest((const unsigned char *)resources, (size_t)res_len))
        python();
    const char *end = text + text_len, *line = p + 1;
    for (unsigned long long i = 0; i < count; i++) { /* each "l PATH" (a leaf) or "a PATH" (an ancestor) */
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl || nl - line < 3 || (line[0] != 'l' && line[0] != 'a') || line[1] != ' ' ||
            !plain_path(line + 2, (size_t)(nl - line - 2)))
            python();
        line = nl + 1;
    }
    if (line != end)
        python();
    for (line = p + 1; line < end; line = strchr(line, '\n') + 1) {
        char path[4096];
        size_t n = (size_t)(strchr(line, '\n') - line - 2);
        if (n >= sizeof path)
            python();
        memcpy(path, line + 2, n);
        path[n] = 0;
        /* A leaf must go (busy: the monitor not yet reaped, or a process left: Python waits and
         * kills); an ancestor shared with another container stays while it is in use. */
        if (rmdir(path) && errno != ENOENT &&
            !(line[0] == 'a' && (errno == EBUSY || errno == ENOTEMPTY)))
            python();
    }
    DIR *d = fdopendir(dup(dfd));
    if (!d)
        python();
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, RECORD_FILE) &&
            unlinkat(dfd, e->d_name, 0) && errno != ENOENT)
            python(); /* a directory in it, ...: Python's */
    closedir(d);
    if ((unlinkat(dfd, RECORD_FILE, 0) && errno != ENOENT) || (rmdir(dir) && errno != ENOENT))
        python();
    exit(0);
}

/* Whether ID is a container ID by Python's rule (urunc.oci.store.validate_id, passed in by
 * the build): `delete --force` of one that does not exist succeeds, as runc's does. */
static int id_ok(const char *id)
{
    size_t len = strlen(id);
    return len > 0 && len <= ID_MAX && strcmp(id, ".") && strcmp(id, "..") && strspn(id, ID_CHARS) == len;
}

int main(int argc, char **argv)
{
    const char *root = "/run/urunc";
    int i = 1;

    g_argv = argv;
    unsetenv("URUNC_INIT"); /* ours to set, never inherited */
    unsetenv("URUNC_FRONT_START");
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char *log = NULL, *log_format = NULL, **value = NULL;
        if (option(a, "--root"))
            value = &root;
        else if (option(a, "--log"))
            value = &log; /* only Python writes the log */
        else if (option(a, "--log-format"))
            value = &log_format;
        else if (strcmp(a, "--debug") && strcmp(a, "--systemd-cgroup"))
            python(); /* --version, --help, anything unknown */
        if (value) {
            if (strchr(a, '='))
                *value = strchr(a, '=') + 1;
            else if (i + 1 < argc)
                *value = argv[++i];
            else
                python();
        }
        if (!*root || (log_format && strcmp(log_format, "text") && strcmp(log_format, "json")))
            python(); /* a usage error, or a root relative to nothing: Python's */
    }
    if (i < argc && !strcmp(argv[i], "create"))
        create(argc, argv, i);
    int force = 0;
    if (i + 3 == argc && !strcmp(argv[i], "delete") && (!strcmp(argv[i + 1], "--force") || !strcmp(argv[i + 1], "-f")))
        force = 1, i++;
    if (getenv("URUNC_TIMESTAMPS") || i + 2 != argc || argv[i + 1][0] == '-' ||
        (strcmp(argv[i - force], "start") && strcmp(argv[i - force], "state") && strcmp(argv[i - force], "delete")))
        python(); /* another command, options, phase timestamps: Python's */
    const char *command = argv[i - force], *id = argv[i + 1];
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", root, id) >= sizeof dir)
        python();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 && errno == ENOENT && force && id_ok(id))
        exit(0); /* nothing to delete */
    if (dfd < 0)
        python(); /* Python says why: no such container, an invalid ID, ... */
    if (!strcmp(command, "state"))
        native_state(dfd, id);
    if (!strcmp(command, "delete"))
        native_delete(dfd, id, dir);
    native_start(dfd, id);
}
