/*
 * Command line, following Unikraft's (>= 0.16.1) convention:
 *
 *     IMAGE [KERNEL-PARAM...] [-- APP-ARGV0 [APP-ARG...]]
 *
 * IMAGE is the first token, which the loader supplies (QEMU prepends the
 * -kernel path, unquoted, to -append); it is skipped. Tokens before the first
 * token that is exactly `--` are kernel parameters; the tokens after it are
 * the application's argv. Without `--`, every token is a kernel parameter
 * and argc is 0. A quoted "--" is indistinguishable from a bare -- (as in
 * Unikraft); later `--` tokens are ordinary application arguments.
 *
 * Tokenizer grammar (the runtime's quoting must mirror it exactly):
 *
 *     cmdline  = { blank } [ token { blank { blank } token } ] { blank }
 *     blank    = " " | TAB
 *     token    = piece { piece }              (pieces concatenate: a"b c"d -> ab cd)
 *     piece    = bare | dquoted | squoted
 *     bare     = any byte except blank, '"', "'"   (a backslash here is literal)
 *     dquoted  = '"' { dchar } ( '"' | end-of-line )
 *     dchar    = '\"' -> '"'  |  '\\' -> '\'  |  any other byte, kept as is
 *                (so '\' followed by any other byte keeps both bytes)
 *     squoted  = "'" { any byte except "'" } ( "'" | end-of-line )
 *
 * `""` and `''` give an empty token. Any byte other than NUL may appear
 * (newlines included, they are not blanks). An unterminated quote runs to the
 * end of the line. A safe encoder: leave an argument bare when it is
 * non-empty and contains none of space, TAB, '"', "'"; otherwise wrap it in
 * double quotes after replacing each '\' by '\\' and each '"' by '\"'.
 *
 * Kernel parameters understood:
 *     env.vars=[ K=V "K2=v with spaces" ]   each token between the bracket
 *                                           tokens is one environment entry;
 *                                           `env.vars=[` and `]` are tokens
 *                                           of their own. env.vars=K=V
 *                                           (no brackets) adds one entry.
 *     netdev.ip=CIDR:GW:DNS0:...            recorded verbatim
 * Anything else is reported as an unknown parameter and ignored.
 */
#include "cmdline.h"
#include "io.h"

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* In-place: unquoting only ever shrinks a token, so the write cursor never
 * overtakes the read cursor. Returns the number of tokens (capped at max). */
static int tokenize(char *s, char **tok, int max, int *truncated)
{
    char *r = s, *w = s;
    int n = 0;

    *truncated = 0;
    for (;;) {
        while (is_blank(*r))
            r++;
        if (!*r)
            break;
        char *start = w;
        while (*r && !is_blank(*r)) {
            if (*r == '"') {
                r++;
                while (*r && *r != '"') {
                    if (r[0] == '\\' && (r[1] == '"' || r[1] == '\\'))
                        r++;
                    *w++ = *r++;
                }
                if (*r)
                    r++;
            } else if (*r == '\'') {
                r++;
                while (*r && *r != '\'')
                    *w++ = *r++;
                if (*r)
                    r++;
            } else {
                *w++ = *r++;
            }
        }
        /* The terminator may overwrite the blank just read, never unread input. */
        char *next = *r ? r + 1 : r;
        *w++ = '\0';
        if (n < max)
            tok[n++] = start;
        else
            *truncated = 1;
        r = next;
    }
    return n;
}

static void add(char **list, int *count, char *item, int *truncated)
{
    if (*count < CMDLINE_MAX_TOKENS)
        list[(*count)++] = item;
    else
        *truncated = 1;
}

void cmdline_parse(char *s, struct cmdline *out)
{
    static char *tok[2 * CMDLINE_MAX_TOKENS];
    int n = tokenize(s, tok, 2 * CMDLINE_MAX_TOKENS, &out->truncated);
    int i = 1;  /* tok[0] is the image name */

    for (; i < n && !streq(tok[i], "--"); i++) {
        char *t = tok[i];
        if (streq(t, "env.vars=[")) {
            for (i++; i < n && !streq(tok[i], "]"); i++)
                add(out->env, &out->envc, tok[i], &out->truncated);
            if (i == n)     /* unclosed array: nothing left for the app */
                break;
        } else if (streq(t, "env.vars=[]")) {
            continue;
        } else if (starts_with(t, "env.vars=")) {
            add(out->env, &out->envc, t + 9, &out->truncated);
        } else if (starts_with(t, "netdev.ip=")) {
            out->netdev_ip = t + 10;
        } else {
            add(out->unknown, &out->unknownc, t, &out->truncated);
        }
    }
    for (i++; i < n; i++)
        add(out->argv, &out->argc, tok[i], &out->truncated);
}
