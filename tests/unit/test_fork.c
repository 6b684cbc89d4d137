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

static int open_contained(const char *mode, const char *containment, struct tether_error *err);

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
        /* containment group: the one that needs no privilege after setuid
         * (pidns, chosen at open as root, would fail first, in unshare) */
        if (open_contained("fork", "group", &err) != 0)
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

/* ---- containment ------------------------------------------------------------------ */

static int open_contained(const char *mode, const char *containment, struct tether_error *err)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "timeouts: { spawn: 2.0, soft_cancel: 0.3, hard_kill: 0.5 }\n"
             "backends:\n"
             "  fork: { path: " TOP_BUILDDIR "/backends/fork/.libs/fork.so,"
             " options: { mode: %s, helper: " TOP_BUILDDIR "/cli/tether-actor,"
             " containment: %s } }\n",
             mode, containment);
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "t.yaml", "/", &cfg, err) == 0, "%s",
                  err->msg);
    return tether_supervisor_open(cfg, NULL, &sup, err);
}

/* alive and not a zombie (a killed orphan is its new parent's to reap) */
static int alive(pid_t pid)
{
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0;
    int ok = fscanf(fp, "%*d (%*[^)]) %c", &state) == 1;
    fclose(fp);
    return ok && state != 'Z' && state != 'X';
}

static int gone_within(pid_t pid, double secs)
{
    int64_t end = tether_now_ns() + (int64_t)(secs * 1e9);
    while (alive(pid) && tether_now_ns() < end)
        usleep(2000);
    return !alive(pid);
}

static pid_t recv_pid(tether_handle *h)
{
    void *buf;
    size_t n;
    ck_assert_int_eq(tether_recv(h, &buf, &n, tether_now_ns() + 3 * SEC), 0);
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.*s", (int)n, (char *)buf);
    free(buf);
    return (pid_t)atoi(tmp);
}

/* Spawn FN under CONTAINMENT, cancel it, and return the escaped
 * descendant's pid; *msg gets the outcome's text. */
static pid_t cancel_escaper(const char *mode, const char *containment, const char *fn, char *msg,
                            size_t n)
{
    struct tether_error err;
    ck_assert_msg(open_contained(mode, containment, &err) == 0, "%s", err.msg);
    const char *detail = tether_supervisor_backend_detail(sup);
    ck_assert_ptr_nonnull(detail);
    char want[64];
    snprintf(want, sizeof want, "containment: %s", containment);
    ck_assert_msg(strstr(detail, want), "detail: %s", detail);
    tether_handle *h;
    char target[512];
    snprintf(target, sizeof target, ACTORS ":%s", fn);
    ck_assert_msg(tether_spawn(sup, target, 0, &h, &err) == 0, "%s", err.msg);
    pid_t gc = recv_pid(h);
    ck_assert_int_gt(gc, 0);
    ck_assert(alive(gc));
    tether_cancel(h);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    snprintf(msg, n, "%s", o.message ? o.message : "");
    tether_handle_release(h);
    teardown();
    assert_no_children();
    return gc;
}

static void escaped_descendant_is_killed(const char *mode, const char *containment, const char *fn)
{
    char msg[256], want[64];
    pid_t gc = cancel_escaper(mode, containment, fn, msg, sizeof msg);
    ck_assert_msg(gone_within(gc, 0.1), "%s: %s: escaped descendant %d survived the teardown",
                  containment, fn, (int)gc);
    snprintf(want, sizeof want, "1 descendant killed (%s)", containment);
    ck_assert_msg(strstr(msg, want), "%s: outcome message does not count it: %s", containment, msg);
}

START_TEST(pidns_kills_an_escaped_descendant_both_modes)
{
    escaped_descendant_is_killed("fork", "pidns", "escaper");
    escaped_descendant_is_killed("exec", "pidns", "escaper");
}
END_TEST

START_TEST(cgroup_kills_an_escaped_descendant_both_modes)
{
    escaped_descendant_is_killed("fork", "cgroup", "escaper");
    escaped_descendant_is_killed("exec", "cgroup", "escaper");
}
END_TEST

START_TEST(subreaper_kills_an_escaped_descendant_both_modes)
{
    escaped_descendant_is_killed("fork", "subreaper", "escaper");
    escaped_descendant_is_killed("exec", "subreaper", "escaper");
}
END_TEST

/* The documented limit of `group`: what leaves the process group survives. */
START_TEST(group_only_leaves_an_escaped_descendant_running)
{
    char msg[256];
    pid_t gc = cancel_escaper("fork", "group", "escaper", msg, sizeof msg);
    ck_assert_msg(alive(gc), "group containment killed an escaped descendant: update the docs");
    kill(gc, SIGKILL);
    ck_assert(gone_within(gc, 1.0));
}
END_TEST

/* The parent of PID (field 4 of /proc/PID/stat), or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64];
    int ppid = -1;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "re");
    if (fp) {
        if (fscanf(fp, "%*d (%*[^)]) %*c %d", &ppid) != 1)
            ppid = -1;
        fclose(fp);
    }
    return (pid_t)ppid;
}

/* pidns: the actor is the child of its namespace's PID 1, not ours (so the
 * dying init reaps it even after our SIGKILL, with no reaper outside to
 * wait for); on x86-64 that PID 1 is the exec'd 91-byte init, not a fork
 * of this process (one copy of the address space per actor, not two). The
 * actor's own wait status still reaches the outcome, through the init. */
START_TEST(pidns_actor_is_the_child_of_the_namespace_init)
{
    static const char *const modes[] = {"fork", "exec"};
    for (int m = 0; m < 2; m++) {
        struct tether_error err;
        ck_assert_msg(open_contained(modes[m], "pidns", &err) == 0, "%s", err.msg);
        tether_handle *h;
        ck_assert_msg(tether_spawn(sup, ACTORS ":cooperative", 0, &h, &err) == 0, "%s", err.msg);
        pid_t actor = (pid_t)tether_handle_pid(h), init = parent_of(actor);
        ck_assert_msg(init > 0 && init != getpid(), "%s: the actor's parent is %d (we are %d)",
                      modes[m], (int)init, (int)getpid());
        ck_assert_int_eq(parent_of(init), getpid());
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) /* TSan: the init is forked (contain.c) */
        char path[64], exe[256] = "";
        snprintf(path, sizeof path, "/proc/%d/exe", (int)init);
        ssize_t n = readlink(path, exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        ck_assert_msg(strstr(exe, "tether-pidns-init"), "%s: the namespace init %d runs %s",
                      modes[m], (int)init, exe);
#endif
        kill(actor, SIGKILL);
        struct tether_outcome o;
        ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
        ck_assert_str_eq(tether_outcome_name(o.kind), "lost");
        ck_assert_int_eq(o.signal, SIGKILL);
        tether_handle_release(h);
        teardown();
        assert_no_children();
    }
}
END_TEST

/* Hostile descendants under pidns: a namespace of their own (nested: still
 * inside), a move out of the actor's cgroup, a tracer. */
START_TEST(pidns_holds_hostile_descendants)
{
    escaped_descendant_is_killed("fork", "pidns", "escaper_unshare");
    escaped_descendant_is_killed("fork", "pidns", "escaper_cgroup");
    escaped_descendant_is_killed("fork", "pidns", "escaper_traced");
}
END_TEST

START_TEST(subreaper_holds_traced_and_unshared_descendants)
{
    escaped_descendant_is_killed("fork", "subreaper", "escaper_traced");
    escaped_descendant_is_killed("fork", "subreaper", "escaper_unshare");
}
END_TEST

/* The documented limit of `cgroup`: a process that may write to another
 * cgroup's cgroup.procs (root) moves out of reach. */
START_TEST(cgroup_cannot_hold_a_descendant_that_leaves_it)
{
    char msg[256];
    pid_t gc = cancel_escaper("fork", "cgroup", "escaper_cgroup", msg, sizeof msg);
    ck_assert_msg(alive(gc), "cgroup containment held a descendant that left it: update the docs");
    kill(gc, SIGKILL);
    ck_assert(gone_within(gc, 1.0));
}
END_TEST

/* The supervising process is SIGKILLed: every descendant, the escaped one
 * included, is gone within 1 s. */
static void parent_death_takes_escaped(const char *mode, const char *containment)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t mid = fork();
    if (mid == 0) {
        close(p[0]);
        struct tether_error err;
        if (open_contained(mode, containment, &err))
            _exit(10);
        tether_handle *h;
        if (tether_spawn(sup, ACTORS ":escaper", 0, &h, &err))
            _exit(11);
        void *buf;
        size_t n;
        if (tether_recv(h, &buf, &n, tether_now_ns() + 3 * SEC))
            _exit(12);
        /* a message is not NUL-terminated: copy it before parsing */
        char num[32];
        snprintf(num, sizeof num, "%.*s", (int)(n < sizeof num ? n : sizeof num - 1), (char *)buf);
        int32_t gc = atoi(num);
        int32_t actor = (int32_t)tether_handle_pid(h);
        ssize_t w = write(p[1], &gc, sizeof gc);
        w = write(p[1], &actor, sizeof actor);
        (void)w;
        for (;;)
            pause();
    }
    close(p[1]);
    int32_t gc = 0, actor = 0;
    ck_assert_int_eq(read(p[0], &gc, sizeof gc), sizeof gc);
    ck_assert_int_eq(read(p[0], &actor, sizeof actor), sizeof actor);
    close(p[0]);
    ck_assert(alive(gc));
    kill(mid, SIGKILL);
    ck_assert_int_eq(waitpid(mid, NULL, 0), mid);
    ck_assert_msg(gone_within(gc, 1.0), "%s/%s: escaped descendant %d outlived its supervisor",
                  mode, containment, (int)gc);
    ck_assert(gone_within(actor, 1.0));
}

START_TEST(parent_death_takes_escaped_descendants_each_mechanism)
{
    parent_death_takes_escaped("exec", "pidns");
    parent_death_takes_escaped("exec", "cgroup");
    parent_death_takes_escaped("exec", "subreaper");
    /* Mode fork runs the actor in a forked copy of this multi-threaded
     * process: ThreadSanitizer does not support such a child (its
     * parent-death handler then missed the 1 s bound under TSan only;
     * tests/sanitizers/README). The normal and ASan builds check it. */
    const char *san = getenv("TETHER_SANITIZER");
    if (san && strcmp(san, "tsan") == 0)
        return;
    parent_death_takes_escaped("fork", "pidns");
    parent_death_takes_escaped("fork", "cgroup");
    parent_death_takes_escaped("fork", "subreaper");
}
END_TEST

START_TEST(unknown_containment_is_refused)
{
    struct tether_error err;
    ck_assert_int_eq(open_contained("fork", "jail", &err), TETHER_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "option containment: 'jail' is not auto, pidns"));
}
END_TEST

/* As an unprivileged user: pidns and cgroup asked for by name are config
 * errors naming the option, the mechanism and the kernel's reason; auto
 * falls back to subreaper and says why. */
START_TEST(unavailable_containment_is_a_config_error_naming_the_reason)
{
    if (geteuid() != 0)
        return; /* needs root to switch to an unprivileged user */
    struct passwd *pw = getpwnam("nobody");
    ck_assert_ptr_nonnull(pw);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(pw->pw_gid) || setuid(pw->pw_uid))
            _exit(11);
        struct tether_error err;
        if (open_contained("fork", "pidns", &err) != TETHER_ECONFIG ||
            !strstr(err.msg, "option containment: pidns is not available here: "
                             "unshare(CLONE_NEWPID): Operation not permitted")) {
            fprintf(stderr, "pidns: %s\n", err.msg);
            _exit(12);
        }
        tether_config_free(cfg);
        if (open_contained("fork", "cgroup", &err) != TETHER_ECONFIG ||
            !strstr(err.msg, "option containment: cgroup is not available here: ") ||
            !strstr(err.msg, "Permission denied")) {
            fprintf(stderr, "cgroup: %s\n", err.msg);
            _exit(13);
        }
        tether_config_free(cfg);
        if (open_contained("fork", "auto", &err) != 0) {
            fprintf(stderr, "auto: %s\n", err.msg);
            _exit(14);
        }
        const char *d = tether_supervisor_backend_detail(sup);
        if (!d || !strstr(d, "containment: subreaper (auto)") || !strstr(d, "not pidns: unshare") ||
            !strstr(d, "not cgroup: ")) {
            fprintf(stderr, "auto detail: %s\n", d ? d : "(null)");
            _exit(15);
        }
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
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
    TCase *ct = tcase_create("containment");
    tcase_add_checked_fixture(ct, NULL, teardown);
    tcase_set_timeout(ct, 30);
    tcase_add_test(ct, pidns_kills_an_escaped_descendant_both_modes);
    tcase_add_test(ct, cgroup_kills_an_escaped_descendant_both_modes);
    tcase_add_test(ct, subreaper_kills_an_escaped_descendant_both_modes);
    tcase_add_test(ct, group_only_leaves_an_escaped_descendant_running);
    tcase_add_test(ct, pidns_holds_hostile_descendants);
    tcase_add_test(ct, pidns_actor_is_the_child_of_the_namespace_init);
    tcase_add_test(ct, subreaper_holds_traced_and_unshared_descendants);
    tcase_add_test(ct, cgroup_cannot_hold_a_descendant_that_leaves_it);
    tcase_add_test(ct, parent_death_takes_escaped_descendants_each_mechanism);
    tcase_add_test(ct, unknown_containment_is_refused);
    tcase_add_test(ct, unavailable_containment_is_a_config_error_naming_the_reason);
    suite_add_tcase(s, ct);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
