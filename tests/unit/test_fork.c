/* tests/unit/test_fork.c - the fork backend's spawn failures: each a clear
 * error within the spawn bound, nothing left behind. Public API only. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tether/tether.h>

#define SEC TETHER_NS_PER_SEC
#define ACTORS TOP_BUILDDIR "/tests/unit/.libs/test_actors.so"

static struct tether_config *cfg;
static tether_supervisor *sup;

static int open_fork(const char *mode, const char *helper, struct tether_error *err)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "timeouts: { spawn: 2.0, soft_cancel: 0.3, hard_kill: 0.3 }\n"
             "backends:\n"
             "  fork: { path: " TOP_BUILDDIR "/backends/fork/.libs/fork.so,"
             " options: { mode: %s, helper: %s } }\n",
             mode, helper);
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "t.yaml", "/", &cfg, err) == 0, "%s",
                  err->msg);
    return tether_supervisor_open(cfg, NULL, &sup, err);
}

static void teardown(void)
{
    if (sup)
        tether_supervisor_close(sup, NULL);
    sup = NULL;
    tether_config_free(cfg);
    cfg = NULL;
}

/* no child of this process may be left, zombie or not */
static void assert_no_children(void)
{
    int st;
    pid_t r = waitpid(-1, &st, WNOHANG);
    ck_assert_msg(r == -1 && errno == ECHILD, "a child process was left behind (pid %d)", (int)r);
}

START_TEST(missing_exec_helper_is_a_clear_error_at_open)
{
    struct tether_error err;
    ck_assert_int_eq(open_fork("exec", "/nonexistent/tether-actor", &err), TETHER_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "exec helper /nonexistent/tether-actor"));
    ck_assert_ptr_nonnull(strstr(err.msg, "No such file or directory"));
}
END_TEST

START_TEST(unknown_mode_is_refused)
{
    struct tether_error err;
    ck_assert_int_eq(open_fork("vfork", "x", &err), TETHER_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "'vfork' is not 'fork' or 'exec'"));
}
END_TEST

static void segfault_while_loading(const char *mode)
{
    struct tether_error err;
    ck_assert_msg(open_fork(mode, TOP_BUILDDIR "/cli/tether-actor", &err) == 0, "%s", err.msg);
    tether_handle *h = NULL;
    int64_t t0 = tether_now_ns();
    int rc = tether_spawn(sup, TOP_BUILDDIR "/tests/unit/.libs/ctor_segv.so:actor", 0, &h, &err);
    ck_assert_int_eq(rc, TETHER_ESPAWN);
    ck_assert_msg(strstr(err.msg, "SIGSEGV"), "no signal in: %s", err.msg);
    ck_assert_int_lt(tether_now_ns() - t0, SEC); /* at once, not at the 2 s spawn bound */
    tether_handle_release(h);
    teardown();
    assert_no_children();
}

START_TEST(module_segfaulting_while_loading_fails_spawn_fork_mode)
{
    segfault_while_loading("fork");
}
END_TEST

START_TEST(module_segfaulting_while_loading_fails_spawn_exec_mode)
{
    segfault_while_loading("exec");
}
END_TEST

/* EAGAIN from fork: run as an unprivileged user with RLIMIT_NPROC at 0
 * (root is exempt from the limit), in a child of this test. */
START_TEST(fork_failure_under_rlimit_nproc_is_a_clear_spawn_error)
{
    if (geteuid() != 0)
        return; /* needs root to switch to an unprivileged user */
    struct passwd *pw = getpwnam("nobody");
    ck_assert_ptr_nonnull(pw);
    pid_t pid = fork();
    if (pid == 0) {
        struct tether_error err;
        if (open_fork("fork", "x", &err) != 0)
            _exit(10);
        if (setgid(pw->pw_gid) || setuid(pw->pw_uid))
            _exit(11);
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_NPROC, &rl);
        tether_handle *h = NULL;
        int rc = tether_spawn(sup, ACTORS ":cooperative", 0, &h, &err);
        if (rc != TETHER_ESPAWN)
            _exit(12);
        if (!strstr(err.msg, "fork: Resource temporarily unavailable")) {
            fprintf(stderr, "unexpected: %s\n", err.msg);
            _exit(13);
        }
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}
END_TEST

START_TEST(external_kill_is_lost_with_the_signal_and_nothing_is_left)
{
    struct tether_error err;
    ck_assert_msg(open_fork("fork", "x", &err) == 0, "%s", err.msg);
    tether_handle *h;
    ck_assert_msg(tether_spawn(sup, ACTORS ":cooperative", 0, &h, &err) == 0, "%s", err.msg);
    ck_assert_int_gt(tether_handle_pid(h), 0);
    kill((pid_t)tether_handle_pid(h), SIGKILL);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "lost");
    ck_assert_int_eq(o.signal, SIGKILL);
    tether_handle_release(h);
    teardown();
    assert_no_children();
}
END_TEST

static long rss_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (fp)
        fclose(fp);
    return kib;
}

/* A hostile child floods messages nobody receives: the supervisor stops
 * reading at its inbox bound (memory stays bounded), says so in the dump,
 * and the child is still torn down within its bound. */
START_TEST(flooding_child_is_bounded_by_backpressure)
{
    struct tether_error err;
    ck_assert_msg(open_fork("fork", "x", &err) == 0, "%s", err.msg);
    long rss0 = rss_kib();
    tether_handle *h;
    ck_assert_msg(tether_spawn(sup, ACTORS ":flood", 0, &h, &err) == 0, "%s", err.msg);
    usleep(1500 * 1000);
    long grown = rss_kib() - rss0;
    /* (under ASan its quarantine keeps freed memory, under TSan each byte
     * touched also maps its shadow and metadata: RSS says nothing there;
     * the inbox bound is still checked below) */
    if (!getenv("ASAN_OPTIONS") && !getenv("TSAN_OPTIONS"))
        ck_assert_msg(grown < 200 * 1024, "the supervisor grew by %ld KiB", grown);
    /* the inbox fills to its bound (slowly under a sanitizer): wait for it */
    char *text = NULL;
    int full = 0;
    for (int i = 0; i < 100 && !full; i++) {
        size_t len = 0;
        free(text);
        text = NULL;
        FILE *fp = open_memstream(&text, &len);
        tether_supervisor_dump(sup, fp);
        fclose(fp);
        full = strstr(text, "full: not reading") != NULL;
        if (!full)
            usleep(100 * 1000);
    }
    ck_assert_msg(full, "dump: %s", text);
    free(text);
    tether_cancel(h);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 2 * SEC, &o), 0);
    ck_assert(o.kind == TETHER_OUTCOME_CANCELLED || o.kind == TETHER_OUTCOME_KILLED);
    /* what it sent before the end can still be received */
    void *buf;
    size_t n;
    ck_assert_int_eq(tether_recv(h, &buf, &n, tether_now_ns() + SEC), 0);
    ck_assert_uint_eq(n, 1024);
    free(buf);
    tether_handle_release(h);
    teardown();
    assert_no_children();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("spawn-errors");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, missing_exec_helper_is_a_clear_error_at_open);
    tcase_add_test(tc, unknown_mode_is_refused);
    tcase_add_test(tc, module_segfaulting_while_loading_fails_spawn_fork_mode);
    tcase_add_test(tc, module_segfaulting_while_loading_fails_spawn_exec_mode);
    tcase_add_test(tc, fork_failure_under_rlimit_nproc_is_a_clear_spawn_error);
    tcase_add_test(tc, external_kill_is_lost_with_the_signal_and_nothing_is_left);
    tcase_add_test(tc, flooding_child_is_bounded_by_backpressure);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
