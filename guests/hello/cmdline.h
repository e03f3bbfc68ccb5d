#ifndef HELLO_CMDLINE_H
#define HELLO_CMDLINE_H

#define CMDLINE_MAX_TOKENS 256

struct cmdline {
    int argc;                               /* application arguments */
    char *argv[CMDLINE_MAX_TOKENS];
    int envc;                               /* from env.vars=[ ... ] */
    char *env[CMDLINE_MAX_TOKENS];
    int unknownc;                           /* kernel params we ignore */
    char *unknown[CMDLINE_MAX_TOKENS];
    char *netdev_ip;                        /* netdev.ip value, or 0 */
    int truncated;                          /* more tokens than we keep */
};

/* Splits the Multiboot command line `s` in place (it is modified) into `out`. */
void cmdline_parse(char *s, struct cmdline *out);

#endif
