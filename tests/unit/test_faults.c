/* tests/unit/test_faults.c - the fault-injection walk: for every site the
 * fault shim knows (tests/fault/fault.c, preloaded by tests/fault/walk.sh),
 * make its 1st, 2nd, ... Nth call during a spawn + call + message + cancel
 * + teardown cycle fail, until the cycle no longer reaches N calls. Each
 * run must end cleanly: every call returns (bounded), an error carries a
 * message, and nothing is left: fds, threads (except reported abandoned),
 * child processes. Each run is a forked child under an alarm. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tether/tether.h>

#define SEC TETHER_NS_PER_SEC
#define ACTORS TOP_BUILDDIR "/tests/unit/.libs/test_actors.so"
#define MAX_N 2000

static int (*arm)(const char *, long);
static int (*disarm)(void);

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n - 1;
}

static int count_threads(void)
{
    FILE *fp = fopen("/proc/self/status", "re");
    char line[256];
    int n = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (fp)
        fclose(fp);
    return n;
}

#define BAD(...)                                                                                 \
    do {                                                                                         \
        fprintf(stderr, __VA_ARGS__);                                                            \
        fputc('\n', stderr);                                                                     \
        _exit(3);                                                                                \
    } while (0)

static void check_error(int rc, const struct tether_error *err, const char *what)
{
    if (rc && (err->code != rc || !err->msg[0]))
        BAD("%s returned %s without a message", what, tether_err_name(rc));
}

/* One cycle with the fault armed at n. Exit status: 0 the fault did not
 * fire (the walk is over), 1 it fired and all was clean, 3 a failure. */
static void cycle(const char *backend, const char *site, long n)
{
    alarm(20); /* a hang is a failure: SIGALRM ends this child */
    int fds0 = count_fds(), threads0 = count_threads();
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "timeouts: { spawn: 1.0, soft_cancel: 0.2, hard_kill: 0.2 }\n"
             "backends:\n"
             "  %s: { path: " TOP_BUILDDIR "/backends/%s/.libs/%s.so }\n",
             backend, backend, backend);
    struct tether_config *cfg;
    struct tether_error err;
    if (tether_config_parse(yaml, strlen(yaml), "t.yaml", "/", &cfg, &err))
        BAD("config: %s", err.msg);
    tether_supervisor *sup;
    if (tether_supervisor_open(cfg, NULL, &sup, &err))
        BAD("open: %s", err.msg);
    arm(site, n);
    tether_handle *h = NULL;
    int rc = tether_spawn(sup, ACTORS ":serve", 0, &h, &err);
    check_error(rc, &err, "spawn");
    if (!rc) {
        struct tether_value a[2] = {{.type = 'i', .v.i = 2}, {.type = 'i', .v.i = 3}}, ret;
        rc = tether_call(h, "add_i", "ii:i", a, 2, &ret, tether_now_ns() + 2 * SEC, &err);
        check_error(rc, &err, "call");
        if (!rc && ret.v.i != 5)
            BAD("add_i(2, 3) = %lld", (long long)ret.v.i);
        tether_send(h, "x", 1, tether_now_ns() + SEC);
    }
    if (h) {
        tether_cancel(h);
        struct tether_outcome o;
        if (tether_wait(h, tether_now_ns() + 3 * SEC, &o))
            BAD("no outcome within the bound");
    }
    tether_handle_release(h);
    int fired = disarm();
    struct tether_close_report rep;
    tether_supervisor_close(sup, &rep);
    tether_config_free(cfg);
    int allow = 2 * (int)rep.abandoned;
    int threads = count_threads();
    for (int i = 0; i < 200 && threads > threads0 + (int)rep.abandoned; i++) {
        usleep(1000);
        threads = count_threads();
    }
    if (count_fds() > fds0 + allow) {
        char list[1024] = "";
        size_t used = 0;
        for (int fd = 3; fd < 256; fd++) {
            char link[64], target[200];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t t = readlink(link, target, sizeof target - 1);
            if (t <= 0)
                continue;
            target[t] = '\0';
            used += (size_t)snprintf(list + used, sizeof list - used, " %d->%s", fd, target);
            if (used >= sizeof list - 1)
                break;
        }
        BAD("%d fd(s) leaked (open now:%s)", count_fds() - fds0 - allow, list);
    }
    if (threads > threads0 + (int)rep.abandoned)
        BAD("%d thread(s) left", threads - threads0 - (int)rep.abandoned);
    int st;
    pid_t left = waitpid(-1, &st, WNOHANG);
    if (left > 0 || (left == 0))
        BAD("a child process was left behind");
    _exit(fired ? 1 : 0);
}

static void walk(const char *backend, const char *site)
{
    ck_assert_msg(arm && disarm, "run through tests/fault/walk.sh (LD_PRELOAD of the fault shim)");
    long n;
    for (n = 1; n <= MAX_N; n++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            cycle(backend, site, n);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st))
            ck_abort_msg("%s %s:%ld: the run died of signal %d (%s)", backend, site, n,
                         WTERMSIG(st), strsignal(WTERMSIG(st)));
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 1, "%s %s:%ld: unclean (status %d)",
                      backend, site, n, WEXITSTATUS(st));
        if (WEXITSTATUS(st) == 0)
            break;
    }
    ck_assert_msg(n <= MAX_N, "%s %s: more than %d calls in one cycle?", backend, site, MAX_N);
    fprintf(stderr, "fault walk %s %s: %ld call(s), each failed once, all clean\n", backend, site,
            n - 1);
}

#define WALK(backend, site, name)                                                                \
    START_TEST(name)                                                                             \
    {                                                                                            \
        walk(backend, site);                                                                     \
    }                                                                                            \
    END_TEST

WALK("thread", "malloc", thread_malloc_failures_are_clean)
WALK("thread", "calloc", thread_calloc_failures_are_clean)
WALK("thread", "realloc", thread_realloc_failures_are_clean)
WALK("thread", "pthread_create", thread_pthread_create_failures_are_clean)
WALK("thread", "socketpair", thread_socketpair_failures_are_clean)
WALK("thread", "eventfd", thread_eventfd_failures_are_clean)
WALK("thread", "send:drop", thread_dropped_frames_are_clean)
WALK("thread", "send:delay", thread_delayed_frames_are_clean)
WALK("thread", "send:halfclose", thread_half_closed_channels_are_clean)
WALK("fork", "malloc", fork_malloc_failures_are_clean)
WALK("fork", "calloc", fork_calloc_failures_are_clean)
WALK("fork", "fork", fork_fork_failures_are_clean)
WALK("fork", "pthread_create", fork_pthread_create_failures_are_clean)
WALK("fork", "socketpair", fork_socketpair_failures_are_clean)
WALK("fork", "send:drop", fork_dropped_frames_are_clean)
WALK("fork", "send:halfclose", fork_half_closed_channels_are_clean)

int main(void)
{
    arm = (int (*)(const char *, long))dlsym(RTLD_DEFAULT, "tether_fault_arm");
    disarm = (int (*)(void))dlsym(RTLD_DEFAULT, "tether_fault_disarm");
    if (!arm) {
        fprintf(stderr, "test_faults: the fault shim is not preloaded; run tests/fault/walk.sh\n");
        return 77;
    }
    /* TETHER_FAULT_ONE=BACKEND:SITE:N:RUNS replays one cycle RUNS times
     * (to chase an intermittent finding); exit 0 when every run was clean. */
    const char *one = getenv("TETHER_FAULT_ONE");
    if (one) {
        char backend[32], site[32];
        long n, runs, bad = 0;
        if (sscanf(one, "%31[^:]:%31[^:]:%ld:%ld", backend, site, &n, &runs) != 4)
            return 2;
        for (long i = 0; i < runs; i++) {
            pid_t pid = fork();
            if (pid == 0)
                cycle(backend, site, n);
            int st;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
                bad++;
        }
        fprintf(stderr, "%s: %ld of %ld runs unclean\n", one, bad, runs);
        return bad ? 1 : 0;
    }
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("walk");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, thread_malloc_failures_are_clean);
    tcase_add_test(tc, thread_calloc_failures_are_clean);
    tcase_add_test(tc, thread_realloc_failures_are_clean);
    tcase_add_test(tc, thread_pthread_create_failures_are_clean);
    tcase_add_test(tc, thread_socketpair_failures_are_clean);
    tcase_add_test(tc, thread_eventfd_failures_are_clean);
    tcase_add_test(tc, thread_dropped_frames_are_clean);
    tcase_add_test(tc, thread_delayed_frames_are_clean);
    tcase_add_test(tc, thread_half_closed_channels_are_clean);
    tcase_add_test(tc, fork_malloc_failures_are_clean);
    tcase_add_test(tc, fork_calloc_failures_are_clean);
    tcase_add_test(tc, fork_fork_failures_are_clean);
    tcase_add_test(tc, fork_pthread_create_failures_are_clean);
    tcase_add_test(tc, fork_socketpair_failures_are_clean);
    tcase_add_test(tc, fork_dropped_frames_are_clean);
    tcase_add_test(tc, fork_half_closed_channels_are_clean);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
