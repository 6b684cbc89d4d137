/* cli/cmd_run.c - `tether run` and `tether call`.
 *
 * Signals: SIGINT, SIGTERM and SIGQUIT are blocked in every thread before
 * the supervisor starts, and the main thread takes them with sigtimedwait
 * while it polls the outcome: no handler runs inside library code, and no
 * wait is unbounded. SIGINT: first = cancel, second = hard kill now, third
 * = print a report and exit at once. SIGQUIT prints the hang dump.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_usage[] =
    "usage: tether run [-c FILE] [-b NAME] [--cancel-after SECS] [--json] [--restart TYPE]\n"
    "                  [--max-restarts N] [--period SECS] [--backoff SECS] TARGET\n"
    "Run one actor (TARGET = path/module.so:function) until it ends, then print\n"
    "its outcome and the time spent in each teardown phase.\n"
    "  -c, --config FILE        configuration (default: $TETHER_CONFIG, ./plugins.yaml)\n"
    "  -b, --backend NAME       backend (default: the configuration's)\n"
    "      --cancel-after SECS  request cancellation after SECS seconds\n"
    "      --json               print the outcome as one JSON object\n"
    "      --restart TYPE       temporary (never restart), transient (after a failure,\n"
    "                           crash or loss), permanent (always); default: the\n"
    "                           configuration's supervision.restart\n"
    "      --max-restarts N     restart intensity: give up past N restarts ...\n"
    "      --period SECS        ... within SECS seconds (default: the configuration's)\n"
    "      --backoff SECS       wait SECS before a respawn, doubling (default: config)\n"
    "Signals: SIGINT once cancels, twice hard-kills, three times exits at once;\n"
    "SIGQUIT prints the hang dump. Exit: 0 clean exit, the actor's status if it\n"
    "exited non-zero, 1 failed or lost, 3 cancelled/killed/abandoned on request,\n"
    "130 interrupted, 2 usage or configuration error; 1 also when the restart\n"
    "intensity was exceeded.\n";

static const char call_usage[] =
    "usage: tether call [-c FILE] [-b NAME] [--timeout SECS] TARGET FUNC SIG [ARGS...]\n"
    "Spawn TARGET, call FUNC with signature SIG (\"ARGS:RET\", letters i l u U d f s v)\n"
    "and the given arguments, print the result, tear the actor down.\n"
    "  --timeout SECS   deadline of the call (default 10)\n";

enum {
    OPT_CANCEL_AFTER = 256,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_RESTART,
    OPT_MAX_RESTARTS,
    OPT_PERIOD,
    OPT_BACKOFF
};

static const struct option run_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"backend", required_argument, NULL, 'b'},
    {"cancel-after", required_argument, NULL, OPT_CANCEL_AFTER},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"restart", required_argument, NULL, OPT_RESTART},
    {"max-restarts", required_argument, NULL, OPT_MAX_RESTARTS},
    {"period", required_argument, NULL, OPT_PERIOD},
    {"backoff", required_argument, NULL, OPT_BACKOFF},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_secs(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e6)
        return -1;
    *out = v;
    return 0;
}

struct run_args {
    struct cli_common c;
    double cancel_after; /* < 0: none */
    double timeout;
    int json;
    int restart;         /* TETHER_RESTART_*; _DEFAULT: the config's */
    long max_restarts;   /* < 0: the config's */
    double period, backoff; /* < 0: the config's */
};

/* --restart, --max-restarts, --period, --backoff (run only). Returns -1 or an exit status. */
static int parse_restart_opt(int c, const char *usage, struct run_args *a)
{
    static const char *const types[] = {"temporary", "transient", "permanent"};
    char *end;
    switch (c) {
    case OPT_RESTART:
        for (int i = 0; i < 3; i++)
            if (!strcmp(optarg, types[i])) {
                a->restart = TETHER_RESTART_TEMPORARY + i;
                return -1;
            }
        cli_usage_error("tether", usage,
                        "--restart: unknown type '%s' (temporary, transient or permanent)", optarg);
        return EXIT_USAGE;
    case OPT_MAX_RESTARTS:
        errno = 0;
        a->max_restarts = strtol(optarg, &end, 10);
        if (errno || end == optarg || *end || a->max_restarts < 0 ||
            a->max_restarts > (long)TETHER_MAX_RESTARTS_LIMIT) {
            cli_usage_error("tether", usage, "--max-restarts: '%s' is not a whole number 0..%u",
                            optarg, TETHER_MAX_RESTARTS_LIMIT);
            return EXIT_USAGE;
        }
        return -1;
    default:
        if (parse_secs(optarg, c == OPT_PERIOD ? &a->period : &a->backoff)) {
            cli_usage_error("tether", usage, "%s: '%s' is not a number of seconds",
                            c == OPT_PERIOD ? "--period" : "--backoff", optarg);
            return EXIT_USAGE;
        }
        return -1;
    }
}

/* Returns -1 to continue (optind at the first operand), else an exit code. */
static int parse_run(int argc, char **argv, const char *usage, struct run_args *a, int allow_run)
{
    int c;
    optind = 1;
    opterr = 0;
    /* run: options may follow TARGET; call: they may not (an argument like
     * -5 is a value, not an option) */
    while ((c = getopt_long(argc, argv, allow_run ? "c:b:h" : "+c:b:h", run_opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->c.config = optarg; break;
        case 'b': a->c.backend = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case OPT_JSON:
            if (!allow_run)
                goto bad;
            a->json = 1;
            break;
        case OPT_CANCEL_AFTER:
            if (!allow_run)
                goto bad;
            if (parse_secs(optarg, &a->cancel_after)) {
                cli_usage_error("tether", usage, "--cancel-after: '%s' is not a number of seconds",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_RESTART:
        case OPT_MAX_RESTARTS:
        case OPT_PERIOD:
        case OPT_BACKOFF: {
            if (!allow_run)
                goto bad;
            int st = parse_restart_opt(c, usage, a);
            if (st >= 0)
                return st;
            break;
        }
        case OPT_TIMEOUT:
            if (allow_run)
                goto bad;
            if (parse_secs(optarg, &a->timeout) || a->timeout <= 0) {
                cli_usage_error("tether", usage, "--timeout: '%s' is not a positive number of seconds",
                                optarg);
                return EXIT_USAGE;
            }
            break;
        default:
        bad:
            cli_usage_error("tether", usage, "unknown or incomplete option '%s'", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    return -1;
}

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static void print_outcome(const char *target, const char *backend, const struct tether_outcome *o,
                          const struct tether_timeouts *to, int json, int64_t teardown_ns,
                          unsigned abandoned, unsigned restarts, int gave_up)
{
    double bound = cli_bound(to, 1);
    if (json) {
        printf("{\"target\":\"%s\",\"backend\":\"%s\",\"outcome\":\"%s\",\"code\":%d,\"signal\":%d,"
               "\"message\":",
               target, backend, tether_outcome_name(o->kind), o->code, o->signal);
        if (o->message) {
            putchar('"');
            for (const char *p = o->message; *p; p++) {
                if (*p == '"' || *p == '\\')
                    printf("\\%c", *p);
                else if ((unsigned char)*p < 0x20)
                    printf("\\u%04x", (unsigned char)*p);
                else
                    putchar(*p);
            }
            putchar('"');
        } else {
            fputs("null", stdout);
        }
        printf(",\"run_s\":%.6f,\"soft_cancel_s\":%.6f,\"hard_kill_s\":%.6f,\"teardown_s\":%.6f,"
               "\"bound_s\":%.6f,\"abandoned\":%u,\"restarts\":%u,\"gave_up\":%s}\n",
               o->run_ns / 1e9, o->soft_cancel_ns / 1e9, o->hard_kill_ns / 1e9,
               teardown_ns / 1e9, bound, abandoned, restarts, gave_up ? "true" : "false");
        return;
    }
    printf("outcome:  %s", tether_outcome_name(o->kind));
    if (o->kind == TETHER_OUTCOME_EXITED)
        printf(" with status %d", o->code);
    if (o->signal && !o->message)
        printf(" by signal %d", o->signal);
    if (o->message)
        printf(" (%s)", o->message);
    printf("\nphases:   run %.3fs", o->run_ns / 1e9);
    if (o->soft_cancel_ns)
        printf(", soft-cancel %.3fs", o->soft_cancel_ns / 1e9);
    if (o->hard_kill_ns)
        printf(", hard-kill %.3fs", o->hard_kill_ns / 1e9);
    putchar('\n');
    if (teardown_ns > 0)
        printf("teardown: %.3fs from the cancel request (bound %.3fs: %s)\n", teardown_ns / 1e9,
               bound, teardown_ns / 1e9 <= bound ? "kept" : "EXCEEDED");
    if (abandoned)
        printf("abandoned: %u actor(s) left running, cut loose\n", abandoned);
}

static int exit_status(const struct tether_outcome *o, int interrupted)
{
    if (interrupted)
        return EXIT_INTERRUPTED;
    switch (o->kind) {
    case TETHER_OUTCOME_EXITED: return o->code == 0 ? EXIT_OK : (o->code & 0xff ? o->code & 0xff : EXIT_FAIL);
    case TETHER_OUTCOME_CANCELLED:
    case TETHER_OUTCOME_KILLED:
    case TETHER_OUTCOME_ABANDONED: return EXIT_STOPPED;
    default: return EXIT_FAIL;
    }
}

/* Print the messages the actor sent so far ("message: TEXT"); none in --json. */
static void print_messages(tether_handle *h, int json)
{
    void *buf;
    size_t len;
    while (tether_recv(h, &buf, &len, tether_now_ns()) == 0) {
        if (!json) {
            fputs("message:  ", stdout);
            for (size_t i = 0; i < len; i++) {
                unsigned char c = ((unsigned char *)buf)[i];
                if (c >= 0x20 && c < 0x7f)
                    putchar(c);
                else
                    printf("\\x%02x", c);
            }
            putchar('\n');
            fflush(stdout);
        }
        free(buf);
    }
}

struct run_state {
    tether_handle *h;
    tether_supervisor *sup;
    sigset_t *set;
    int64_t cancel_at;
    int64_t cancelled_at;
    int sigints;
    int interrupted;
};

/* One look at the clock and the pending signals; never blocks. */
static void handle_signals(struct run_state *rs)
{
    if (!rs->cancelled_at && tether_now_ns() >= rs->cancel_at) {
        rs->cancelled_at = tether_now_ns();
        tether_cancel(rs->h);
    }
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(rs->set, NULL, &zero);
    if (sig == SIGQUIT) {
        tether_supervisor_dump(rs->sup, stderr);
        return;
    }
    if (sig != SIGINT && sig != SIGTERM)
        return;
    rs->interrupted = 1;
    rs->sigints++;
    if (!rs->cancelled_at)
        rs->cancelled_at = tether_now_ns();
    if (rs->sigints == 1 && sig == SIGINT) {
        fprintf(stderr, "tether run: interrupt: cancelling (again to kill now)\n");
        tether_cancel(rs->h);
    } else if (rs->sigints == 2 || (sig == SIGTERM && rs->sigints == 1)) {
        fprintf(stderr, "tether run: interrupt: hard kill now (again to give up at once)\n");
        tether_kill(rs->h);
    } else {
        fprintf(stderr, "tether run: interrupt: giving up on the actor, state %s\n",
                tether_handle_state(rs->h));
        tether_supervisor_dump(rs->sup, stderr);
        fflush(NULL);
        _exit(EXIT_INTERRUPTED);
    }
}

/* The command line's restart options over the configuration's supervision. */
static int apply_supervision(tether_supervisor *sup, const struct run_args *a)
{
    struct tether_supervision sv;
    tether_supervisor_supervision(sup, &sv);
    if (a->max_restarts >= 0)
        sv.max_restarts = (unsigned)a->max_restarts;
    if (a->period >= 0)
        sv.period = a->period;
    if (a->backoff >= 0)
        sv.backoff = a->backoff;
    struct tether_error err;
    if (tether_supervisor_set_supervision(sup, &sv, &err) == 0)
        return 0;
    fprintf(stderr, "tether run: --max-restarts/--period/--backoff: %s\n", err.msg);
    return -1;
}

/* The restarts, and a give-up (the restart intensity exceeded), if any. */
static void print_restarts(unsigned n, const char *failure, int gave_up, int json)
{
    if (!json && n)
        printf("restarts: %u\n", n);
    if (!json && gave_up)
        printf("gave up:  %s\n", failure);
}

int cmd_run(int argc, char **argv)
{
    struct run_args a = {.cancel_after = -1, .max_restarts = -1, .period = -1, .backoff = -1};
    int rc = parse_run(argc, argv, run_usage, &a, 1);
    if (rc >= 0)
        return rc;
    if (optind != argc - 1) {
        cli_usage_error("tether run", run_usage, optind >= argc ? "missing TARGET" : "too many arguments");
        return EXIT_USAGE;
    }
    const char *target = argv[optind];
    struct tether_config *cfg = cli_load_config("tether run", a.c.config);
    if (!cfg)
        return EXIT_USAGE;
    sigset_t set;
    block_signals(&set);
    struct tether_error err;
    tether_supervisor *sup;
    if (tether_supervisor_open(cfg, a.c.backend, &sup, &err)) {
        fprintf(stderr, "tether run: %s\n", err.msg);
        tether_config_free(cfg);
        return err.code == TETHER_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
    }
    if (apply_supervision(sup, &a)) {
        tether_supervisor_close(sup, NULL);
        tether_config_free(cfg);
        return EXIT_USAGE;
    }
    /* copied: the supervisor is gone when the outcome is printed */
    struct tether_timeouts to = *tether_supervisor_timeouts(sup);
    char backend[64];
    snprintf(backend, sizeof backend, "%s", tether_supervisor_backend(sup));
    tether_handle *h = NULL;
    int status = EXIT_FAIL;
    int64_t t0 = tether_now_ns();
    int64_t cancel_at = a.cancel_after >= 0 ? t0 + (int64_t)(a.cancel_after * 1e9) : TETHER_NEVER;
    if (!a.json)
        printf("actor:    %s on backend %s\n", target, backend);
    fflush(stdout);
    struct tether_spawn_opts so = {.flags = TETHER_SPAWN_NOWAIT, .restart = a.restart};
    rc = tether_spawn_ex(sup, target, &so, &h, &err);
    if (rc) {
        fprintf(stderr, "tether run: %s\n", err.msg);
        goto out;
    }
    struct run_state rs = {.h = h, .sup = sup, .set = &set, .cancel_at = cancel_at};
    /* Phase 1: until ready (or not), in 10 ms slices so that signals and
     * --cancel-after act during a slow spawn too. */
    for (;;) {
        rc = tether_wait_ready(h, tether_now_ns() + 10 * 1000000LL, &err);
        /* ETIMEDOUT is also a spawn that timed out for good: the handle
         * then has its outcome */
        if (rc != TETHER_ETIMEDOUT || tether_wait(h, tether_now_ns(), NULL) == 0)
            break;
        handle_signals(&rs);
    }
    if (rc) {
        fprintf(stderr, "tether run: spawn failed: %s\n", err.msg);
        status = rs.interrupted ? EXIT_INTERRUPTED : EXIT_FAIL;
        goto out;
    }
    if (!a.json)
        printf("ready:    after %.3fs\n", (tether_now_ns() - t0) / 1e9);
    fflush(stdout);
    /* Phase 2: until the outcome, in the same slices, showing what the
     * actor sends. */
    struct tether_outcome o;
    while (tether_wait(h, tether_now_ns() + 10 * 1000000LL, &o) != 0) {
        print_messages(h, a.json);
        handle_signals(&rs);
    }
    print_messages(h, a.json);
    int interrupted = rs.interrupted;
    int64_t cancelled_at = rs.cancelled_at;
    int64_t teardown = cancelled_at ? tether_now_ns() - cancelled_at : 0;
    const char *failure = tether_supervisor_failure(sup);
    char *failure_copy = failure ? strdup(failure) : NULL; /* valid until close */
    struct tether_close_report rep;
    tether_supervisor_close(sup, &rep);
    sup = NULL;
    unsigned restarts = tether_handle_restarts(h);
    int gave_up = failure_copy && strstr(failure_copy, "restart intensity exceeded") != NULL;
    print_outcome(target, backend, &o, &to, a.json, teardown, rep.abandoned, restarts, gave_up);
    print_restarts(restarts, failure_copy, gave_up, a.json);
    free(failure_copy);
    status = exit_status(&o, interrupted);
    if (gave_up && status == EXIT_OK)
        status = EXIT_FAIL;
out:
    tether_handle_release(h);
    if (sup)
        tether_supervisor_close(sup, NULL);
    tether_config_free(cfg);
    return status;
}

/* Parse one argument of type `t` from text. */
static int parse_value(char t, const char *s, struct tether_value *v)
{
    char *end;
    errno = 0;
    v->type = t;
    switch (t) {
    case 'i':
    case 'l': v->v.i = strtoll(s, &end, 0); break;
    case 'u':
    case 'U':
        if (*s == '-')
            return -1;
        v->v.u = strtoull(s, &end, 0);
        break;
    case 'd':
    case 'f': v->v.d = strtod(s, &end); break;
    case 's': v->v.s = s; return 0;
    default: return -1;
    }
    if (errno || end == s || *end)
        return -1;
    if (t == 'i' && (v->v.i < INT32_MIN || v->v.i > INT32_MAX))
        return -1;
    if (t == 'u' && v->v.u > UINT32_MAX)
        return -1;
    return 0;
}

static void print_value(const struct tether_value *v)
{
    switch (v->type) {
    case 'i':
    case 'l': printf("%lld\n", (long long)v->v.i); break;
    case 'u':
    case 'U': printf("%llu\n", (unsigned long long)v->v.u); break;
    case 'd':
    case 'f': printf("%.17g\n", v->v.d); break;
    case 's': printf("%s\n", v->v.s ? v->v.s : "(null)"); break;
    default: printf("(void)\n"); break;
    }
}

/* `tether call` blocks in one call: a thread takes the signals meanwhile
 * (in 100 ms slices, so it never waits unboundedly) and cancels everything
 * on SIGINT/SIGTERM, which releases the call at once. */
struct call_signals {
    tether_supervisor *sup;
    sigset_t *set;
    volatile int stop;
    volatile int interrupted;
};

static void *call_signal_main(void *arg)
{
    struct call_signals *cs = arg;
    while (!cs->stop) {
        struct timespec slice = {0, 100 * 1000000L};
        int sig = sigtimedwait(cs->set, NULL, &slice);
        if (sig == SIGQUIT) {
            tether_supervisor_dump(cs->sup, stderr);
        } else if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "tether call: interrupt: cancelling\n");
            cs->interrupted = 1;
            tether_supervisor_cancel_all(cs->sup);
        }
    }
    return NULL;
}

int cmd_call(int argc, char **argv)
{
    struct run_args a = {.cancel_after = -1, .timeout = 10};
    int rc = parse_run(argc, argv, call_usage, &a, 0);
    if (rc >= 0)
        return rc;
    if (argc - optind < 3) {
        cli_usage_error("tether call", call_usage, "missing TARGET, FUNC or SIG");
        return EXIT_USAGE;
    }
    const char *target = argv[optind], *func = argv[optind + 1], *sig = argv[optind + 2];
    char **vals = argv + optind + 3;
    size_t nvals = (size_t)(argc - optind - 3);
    const char *colon = strchr(sig, ':');
    if (!colon || colon[1] == '\0' || colon[2] != '\0') {
        cli_usage_error("tether call", call_usage, "SIG '%s' is not of the form ARGS:RET", sig);
        return EXIT_USAGE;
    }
    size_t want = (size_t)(colon - sig);
    if (want != nvals || nvals > TETHER_CALL_MAX_ARGS) {
        cli_usage_error("tether call", call_usage, "signature '%s' takes %zu argument(s), %zu given",
                        sig, want, nvals);
        return EXIT_USAGE;
    }
    struct tether_value args[TETHER_CALL_MAX_ARGS];
    for (size_t i = 0; i < nvals; i++)
        if (parse_value(sig[i], vals[i], &args[i])) {
            cli_usage_error("tether call", call_usage, "argument %zu: '%s' is not of type '%c'",
                            i + 1, vals[i], sig[i]);
            return EXIT_USAGE;
        }
    struct tether_config *cfg = cli_load_config("tether call", a.c.config);
    if (!cfg)
        return EXIT_USAGE;
    sigset_t set;
    block_signals(&set);
    struct tether_error err;
    tether_supervisor *sup;
    if (tether_supervisor_open(cfg, a.c.backend, &sup, &err)) {
        fprintf(stderr, "tether call: %s\n", err.msg);
        tether_config_free(cfg);
        return err.code == TETHER_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
    }
    tether_handle *h = NULL;
    int status = EXIT_FAIL;
    struct call_signals cs = {.sup = sup, .set = &set};
    pthread_t sig_thread;
    int have_sig_thread = pthread_create(&sig_thread, NULL, call_signal_main, &cs) == 0;
    if (tether_spawn(sup, target, 0, &h, &err)) {
        fprintf(stderr, "tether call: %s\n", err.msg);
        goto out;
    }
    struct tether_value ret;
    if (tether_call(h, func, sig, args, nvals, &ret, tether_now_ns() + (int64_t)(a.timeout * 1e9),
                    &err)) {
        fprintf(stderr, "tether call: %s: %s\n", tether_err_name(err.code), err.msg);
        goto out;
    }
    print_value(&ret);
    if (ret.type == 's')
        free((char *)ret.v.s);
    status = EXIT_OK;
out:
    /* close cancels the actor within the configured bound */
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    if (have_sig_thread) {
        cs.stop = 1;
        pthread_join(sig_thread, NULL); /* bounded: it wakes every 100 ms */
    }
    tether_config_free(cfg);
    return cs.interrupted ? EXIT_INTERRUPTED : status;
}
