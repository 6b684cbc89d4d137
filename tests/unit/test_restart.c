/* tests/unit/test_restart.c - restarts (issue 18), on the thread backend,
 * through the public API only: restart types, intensity, strategies, the
 * handle following its actor, and the promises (an explicit cancel ends it
 * for good, nothing restarts once close began, waiters on an ended instance
 * return at once). Deadlines are bounds plus a generous margin: these tests
 * pin what happens, not how fast (timings live in the conformance suite).
 * The crash loop's CPU cost is a resource bound, measured with getrusage. */
#include <check.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <tether/tether.h>

#include "live_tasks.h"

#define ACTORS TOP_BUILDDIR "/tests/unit/.libs/test_actors.so"
#define SEC TETHER_NS_PER_SEC

static struct tether_config *cfg;
static tether_supervisor *sup;

static char events_path[256];

static void open_with(const char *supervision)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "backend: thread\n"
             "timeouts: { spawn: 2.0, soft_cancel: 0.3, hard_kill: 0.3 }\n"
             "supervision: %s\n"
             "%s%s%s"
             "backends:\n"
             "  thread: { path: " TOP_BUILDDIR "/backends/thread/.libs/thread.so }\n",
             supervision, events_path[0] ? "events: " : "", events_path,
             events_path[0] ? "\n" : "");
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
}

static void teardown(void)
{
    if (sup) {
        char *text = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&text, &len);
        tether_supervisor_dump(sup, fp);
        fclose(fp);
        ck_assert_msg(!strstr(text, "impossible"), "%s", text);
        free(text);
        tether_supervisor_close(sup, NULL);
    }
    sup = NULL;
    tether_config_free(cfg);
    cfg = NULL;
}

static tether_handle *spawn(const char *fn, int restart)
{
    char target[512];
    snprintf(target, sizeof target, "%s:%s", ACTORS, fn);
    tether_handle *h;
    struct tether_error err;
    struct tether_spawn_opts o = {.restart = restart};
    ck_assert_msg(tether_spawn_ex(sup, target, &o, &h, &err) == 0, "%s", err.msg);
    return h;
}

static struct tether_outcome wait_end(tether_handle *h, int secs)
{
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + secs * SEC, &o), 0);
    return o;
}

/* Poll (bounded) until the actor is in `state`. */
static void wait_state(tether_handle *h, const char *state)
{
    int64_t end = tether_now_ns() + 5 * SEC;
    while (strcmp(tether_handle_state(h), state) != 0) {
        ck_assert_msg(tether_now_ns() < end, "never reached %s (is %s)", state,
                      tether_handle_state(h));
        usleep(1000);
    }
}

START_TEST(transient_restarts_after_failures_not_after_a_normal_exit)
{
    open_with("{ max_restarts: 5, period: 10 }");
    tether_handle *h = spawn("fail_twice", TETHER_RESTART_TRANSIENT);
    struct tether_outcome o = wait_end(h, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_int_eq(o.code, 0);
    ck_assert_uint_eq(tether_handle_restarts(h), 2);
    ck_assert_uint_eq(tether_supervisor_restarts(sup), 2);
    ck_assert_ptr_null(tether_supervisor_failure(sup));
    tether_handle_release(h);
}
END_TEST

/* The engine sleeps as SCHED_BATCH while its actors run (core/teardown.c,
 * calm_sleep); a restart is spawned by the engine, and its thread must not
 * inherit that: the second instance reports its policy as its exit code. */
START_TEST(a_restarted_actor_runs_under_the_normal_scheduling_policy)
{
    open_with("{ max_restarts: 5, period: 10 }");
    char target[512];
    snprintf(target, sizeof target, "%s:fail_then_report_policy", ACTORS);
    tether_handle *h;
    struct tether_error err;
    /* a backoff: the engine sleeps (calm) between the instances */
    struct tether_spawn_opts so = {.restart = TETHER_RESTART_TRANSIENT, .backoff = 0.05};
    ck_assert_msg(tether_spawn_ex(sup, target, &so, &h, &err) == 0, "%s", err.msg);
    struct tether_outcome o = wait_end(h, 5);
    ck_assert_uint_eq(tether_handle_restarts(h), 1);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_msg(o.code == SCHED_OTHER, "the restarted actor's policy is %d, not SCHED_OTHER",
                  o.code);
    tether_handle_release(h);
}
END_TEST

START_TEST(temporary_is_the_default_and_never_restarts)
{
    open_with("{ max_restarts: 5, period: 10 }");
    tether_handle *h = spawn("fails", TETHER_RESTART_DEFAULT);
    struct tether_outcome o = wait_end(h, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "failed");
    ck_assert_uint_eq(tether_handle_restarts(h), 0);
    tether_handle_release(h);
}
END_TEST

START_TEST(permanent_exit_restarts_until_the_intensity_is_exceeded)
{
    open_with("{ max_restarts: 3, period: 10 }");
    tether_handle *s = spawn("cooperative", TETHER_RESTART_TEMPORARY);
    tether_handle *h = spawn("exit_7", TETHER_RESTART_PERMANENT);
    struct tether_outcome o = wait_end(h, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_uint_eq(tether_handle_restarts(h), 3);
    const char *f = tether_supervisor_failure(sup);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(strstr(f, "restart intensity exceeded: 3 restarts in 10 s; last failure: actor"),
                  "%s", f);
    /* the supervisor gave up: the sibling is torn down */
    o = wait_end(s, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(s);
    tether_handle_release(h);
}
END_TEST

START_TEST(events_name_the_restarts_and_the_give_up)
{
    snprintf(events_path, sizeof events_path, "/tmp/tether-restart-events-%d.jsonl", (int)getpid());
    unlink(events_path);
    open_with("{ max_restarts: 2, period: 10 }");
    tether_handle *h = spawn("exit_7", TETHER_RESTART_PERMANENT);
    wait_end(h, 5);
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    sup = NULL;
    FILE *fp = fopen(events_path, "r");
    ck_assert_ptr_nonnull(fp);
    char line[1024], all[32768] = "";
    while (fgets(line, sizeof line, fp))
        strncat(all, line, sizeof all - strlen(all) - 1);
    fclose(fp);
    unlink(events_path);
    events_path[0] = '\0';
    const char *phases[] = {"\"restarting\"", "\"respawned\"", "\"restart-intensity-exceeded\"",
                            "\"restarts\":1", "\"max_restarts\":2"};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
        ck_assert_msg(strstr(all, phases[i]), "no %s in:\n%s", phases[i], all);
}
END_TEST

START_TEST(max_restarts_zero_never_restarts)
{
    open_with("{ max_restarts: 0, period: 5 }");
    tether_handle *h = spawn("exit_7", TETHER_RESTART_PERMANENT);
    wait_end(h, 5);
    ck_assert_uint_eq(tether_handle_restarts(h), 0);
    ck_assert_ptr_nonnull(strstr(tether_supervisor_failure(sup), "restart intensity exceeded"));
    tether_handle_release(h);
}
END_TEST

START_TEST(explicit_cancel_ends_a_permanent_actor_for_good)
{
    open_with("{ max_restarts: 5, period: 10 }");
    tether_handle *h = spawn("cooperative", TETHER_RESTART_PERMANENT);
    tether_cancel(h);
    struct tether_outcome o = wait_end(h, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    ck_assert_uint_eq(tether_handle_restarts(h), 0);
    ck_assert_str_eq(tether_handle_state(h), "reaped");
    tether_handle_release(h);
}
END_TEST

START_TEST(close_during_backoff_does_not_respawn)
{
    open_with("{ max_restarts: 5, period: 10, backoff: 30 }");
    tether_handle *h = spawn("fail_on_msg", TETHER_RESTART_PERMANENT);
    ck_assert_int_eq(tether_send(h, "fail", 4, tether_now_ns() + SEC), 0);
    wait_state(h, "restarting");
    /* the dump names the restart and the next respawn */
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    tether_supervisor_dump(sup, fp);
    fclose(fp);
    ck_assert_msg(strstr(text, "next respawn in") && strstr(text, "restart permanent"), "%s", text);
    free(text);
    struct tether_close_report r;
    tether_supervisor_close(sup, &r);
    sup = NULL;
    ck_assert_str_eq(tether_handle_state(h), "reaped");
    ck_assert_uint_eq(tether_handle_restarts(h), 0);
    tether_handle_release(h);
}
END_TEST

START_TEST(cancel_during_backoff_ends_it)
{
    open_with("{ max_restarts: 5, period: 10, backoff: 30 }");
    tether_handle *h = spawn("fail_on_msg", TETHER_RESTART_PERMANENT);
    ck_assert_int_eq(tether_send(h, "fail", 4, tether_now_ns() + SEC), 0);
    wait_state(h, "restarting");
    tether_cancel(h);
    struct tether_outcome o = wait_end(h, 2);
    ck_assert_str_eq(tether_outcome_name(o.kind), "failed"); /* the last instance's */
    ck_assert_uint_eq(tether_handle_restarts(h), 0);
    tether_handle_release(h);
}
END_TEST

/* A cancel racing a restart (the instance ending, the backoff, the respawn
 * or the new instance starting): whichever it meets, the actor ends for
 * good, and nothing restarts after. */
START_TEST(cancel_racing_a_restart_ends_it_for_good)
{
    open_with("{ max_restarts: 1000, period: 10 }");
    for (int i = 0; i < 20; i++) {
        tether_handle *h = spawn("fail_on_msg", TETHER_RESTART_PERMANENT);
        ck_assert_int_eq(tether_send(h, "fail", 4, tether_now_ns() + SEC), 0);
        usleep((useconds_t)(i * 150));
        tether_cancel(h);
        wait_end(h, 5);
        unsigned n = tether_handle_restarts(h);
        usleep(20 * 1000);
        ck_assert_uint_eq(tether_handle_restarts(h), n);
        ck_assert(!strcmp(tether_handle_state(h), "reaped"));
        tether_handle_release(h);
    }
}
END_TEST

START_TEST(rest_for_one_restarts_the_later_actors_in_order)
{
    open_with("{ strategy: rest_for_one, max_restarts: 5, period: 10 }");
    tether_handle *a = spawn("cooperative", TETHER_RESTART_PERMANENT);
    tether_handle *b = spawn("fail_on_msg", TETHER_RESTART_TRANSIENT);
    tether_handle *c = spawn("cooperative", TETHER_RESTART_PERMANENT);
    tether_handle *d = spawn("cooperative", TETHER_RESTART_TEMPORARY);
    ck_assert_int_eq(tether_send(b, "fail", 4, tether_now_ns() + SEC), 0);
    int64_t end = tether_now_ns() + 5 * SEC;
    while (tether_handle_restarts(c) < 1 || strcmp(tether_handle_state(c), "running"))
        ck_assert(tether_now_ns() < end), usleep(1000);
    wait_state(b, "running");
    ck_assert_uint_eq(tether_handle_restarts(a), 0);
    ck_assert_str_eq(tether_handle_state(a), "running");
    ck_assert_uint_eq(tether_handle_restarts(b), 1);
    ck_assert_uint_eq(tether_handle_restarts(c), 1);
    /* a temporary actor is torn down with its group, not restarted */
    struct tether_outcome o = wait_end(d, 5);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    ck_assert_uint_eq(tether_handle_restarts(d), 0);
    ck_assert_ptr_null(tether_supervisor_failure(sup));
    tether_handle_release(a);
    tether_handle_release(b);
    tether_handle_release(c);
    tether_handle_release(d);
}
END_TEST

START_TEST(one_for_all_restarts_every_sibling)
{
    open_with("{ strategy: one_for_all, max_restarts: 5, period: 10 }");
    tether_handle *a = spawn("cooperative", TETHER_RESTART_PERMANENT);
    tether_handle *b = spawn("fail_on_msg", TETHER_RESTART_TRANSIENT);
    ck_assert_int_eq(tether_send(b, "fail", 4, tether_now_ns() + SEC), 0);
    int64_t end = tether_now_ns() + 5 * SEC;
    while (tether_handle_restarts(a) < 1 || strcmp(tether_handle_state(a), "running"))
        ck_assert(tether_now_ns() < end), usleep(1000);
    wait_state(b, "running");
    ck_assert_uint_eq(tether_handle_restarts(b), 1);
    ck_assert_uint_eq(tether_supervisor_restarts(sup), 2);
    tether_handle_release(a);
    tether_handle_release(b);
}
END_TEST

START_TEST(waiters_on_the_old_instance_return_and_the_handle_carries_on)
{
    open_with("{ max_restarts: 5, period: 10 }");
    tether_handle *h = spawn("fail_on_msg", TETHER_RESTART_PERMANENT);
    ck_assert_int_eq(tether_send(h, "fail", 4, tether_now_ns() + SEC), 0);
    void *buf;
    size_t len;
    int rc = tether_recv(h, &buf, &len, tether_now_ns() + 5 * SEC);
    ck_assert_msg(rc != 0 && rc != TETHER_ETIMEDOUT, "recv on the ended instance: %d", rc);
    wait_state(h, "running");
    ck_assert_uint_eq(tether_handle_restarts(h), 1);
    /* the same handle talks to the new instance */
    ck_assert_int_eq(tether_send(h, "fail", 4, tether_now_ns() + SEC), 0);
    int64_t end = tether_now_ns() + 5 * SEC;
    while (tether_handle_restarts(h) < 2)
        ck_assert(tether_now_ns() < end), usleep(1000);
    tether_handle_release(h);
}
END_TEST

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* 1,000 instant failures, then the supervisor gives up: under a second of
 * CPU in all, and no fd or thread left over from the instances. */
START_TEST(crash_loop_is_cheap_and_leaves_nothing)
{
    open_with("{ max_restarts: 1000, period: 3600 }");
    int fds = count_dir("/proc/self/fd"), threads = live_tasks(NULL, 1 << 16, NULL);
    double cpu0 = cpu_s();
    tether_handle *h = spawn("fails", TETHER_RESTART_PERMANENT);
    wait_end(h, 60);
    double cpu = cpu_s() - cpu0;
    ck_assert_uint_eq(tether_handle_restarts(h), 1000);
    ck_assert_ptr_nonnull(strstr(tether_supervisor_failure(sup), "1000 restarts in 3600 s"));
    fprintf(stderr, "crash loop: 1000 restarts cost %.3f s of CPU\n", cpu);
    /* a sanitizer's own work is not the supervisor's CPU (ASan: ~1.04 s) */
    if (!getenv("ASAN_OPTIONS") && !getenv("TSAN_OPTIONS"))
        ck_assert_msg(cpu < 1.0, "1000 restarts cost %.3f s of CPU", cpu);
    tether_handle_release(h);
    usleep(100 * 1000); /* the last actor thread's own exit */
    ck_assert_int_le(count_dir("/proc/self/fd"), fds);
    ck_assert_int_le(live_tasks(NULL, 1 << 16, NULL), threads);
}
END_TEST

START_TEST(spawn_options_and_supervision_are_checked)
{
    open_with("{}");
    struct tether_supervision sv;
    tether_supervisor_supervision(sup, &sv);
    ck_assert_uint_eq(sv.max_restarts, 1);
    ck_assert(sv.period == 5);
    ck_assert_int_eq(sv.restart, TETHER_RESTART_TEMPORARY);
    struct tether_error err;
    sv.period = 0;
    ck_assert_int_eq(tether_supervisor_set_supervision(sup, &sv, &err), TETHER_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "period"));
    sv.period = 5;
    sv.strategy = 7;
    ck_assert_int_eq(tether_supervisor_set_supervision(sup, &sv, &err), TETHER_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "strategy"));
    tether_handle *h;
    struct tether_spawn_opts o = {.restart = 9};
    ck_assert_int_eq(tether_spawn_ex(sup, ACTORS ":cooperative", &o, &h, &err), TETHER_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "restart type"));
    o.restart = 0;
    o.backoff = -1;
    ck_assert_int_eq(tether_spawn_ex(sup, ACTORS ":cooperative", &o, &h, &err), TETHER_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("restart");
    TCase *tc = tcase_create("restart");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, transient_restarts_after_failures_not_after_a_normal_exit);
    tcase_add_test(tc, temporary_is_the_default_and_never_restarts);
    tcase_add_test(tc, a_restarted_actor_runs_under_the_normal_scheduling_policy);
    tcase_add_test(tc, permanent_exit_restarts_until_the_intensity_is_exceeded);
    tcase_add_test(tc, max_restarts_zero_never_restarts);
    tcase_add_test(tc, events_name_the_restarts_and_the_give_up);
    tcase_add_test(tc, explicit_cancel_ends_a_permanent_actor_for_good);
    tcase_add_test(tc, close_during_backoff_does_not_respawn);
    tcase_add_test(tc, cancel_during_backoff_ends_it);
    tcase_add_test(tc, cancel_racing_a_restart_ends_it_for_good);
    tcase_add_test(tc, rest_for_one_restarts_the_later_actors_in_order);
    tcase_add_test(tc, one_for_all_restarts_every_sibling);
    tcase_add_test(tc, waiters_on_the_old_instance_return_and_the_handle_carries_on);
    tcase_add_test(tc, crash_loop_is_cheap_and_leaves_nothing);
    tcase_add_test(tc, spawn_options_and_supervision_are_checked);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
