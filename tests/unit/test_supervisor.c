/* tests/unit/test_supervisor.c - the teardown state machine and waiter
 * release, on the thread backend, through the public API only.
 *
 * Deadlines given to tether_wait are the promise's bound plus a generous
 * margin: these tests pin that each waiter returns and with what, not how
 * fast (timings live in bench/ and in the conformance suite). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* SCHED_BATCH */
#endif
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tether/backend.h>
#include <tether/tether.h>

#define ACTORS TOP_BUILDDIR "/tests/unit/.libs/test_actors.so"
#define SEC TETHER_NS_PER_SEC

static struct tether_config *cfg;
static tether_supervisor *sup;
static char events_path[256];

static void open_with(const char *soft, const char *hard, const char *extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "backend: thread\n"
             "timeouts: { spawn: 2.0, soft_cancel: %s, hard_kill: %s }\n"
             "%s"
             "backends:\n"
             "  thread: { path: " TOP_BUILDDIR "/backends/thread/.libs/thread.so }\n",
             soft, hard, extra ? extra : "");
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
}

static void setup(void)
{
    open_with("0.3", "0.3", NULL);
}

static void teardown(void)
{
    if (sup) {
        /* no test may drive the engine into a cell the table calls impossible */
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

static tether_handle *spawn(const char *fn)
{
    char target[512];
    snprintf(target, sizeof target, "%s:%s", ACTORS, fn);
    tether_handle *h;
    struct tether_error err;
    ck_assert_msg(tether_spawn(sup, target, 0, &h, &err) == 0, "%s", err.msg);
    return h;
}

static struct tether_outcome cancel_and_wait(tether_handle *h)
{
    struct tether_outcome o;
    ck_assert_int_eq(tether_cancel(h), 0);
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    return o;
}

START_TEST(cooperative_actor_is_cancelled_without_using_the_soft_timeout)
{
    tether_handle *h = spawn("cooperative");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    ck_assert_int_eq(o.hard_kill_ns, 0);
    ck_assert_int_lt(o.soft_cancel_ns, 300 * 1000000LL); /* under soft_cancel */
    tether_handle_release(h);
}
END_TEST

START_TEST(timed_waits_actor_is_killed_after_the_soft_deadline)
{
    tether_handle *h = spawn("timed_waits");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    ck_assert_int_ge(o.soft_cancel_ns, 300 * 1000000LL);
    tether_handle_release(h);
}
END_TEST

START_TEST(blocked_read_actor_is_killed)
{
    tether_handle *h = spawn("blocked_read");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    tether_handle_release(h);
}
END_TEST

START_TEST(busy_loop_actor_is_abandoned_and_counted)
{
    tether_handle *h = spawn("busy_loop");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "abandoned");
    ck_assert_uint_eq(tether_supervisor_abandoned(sup), 1);
    ck_assert_str_eq(tether_handle_state(h), "abandoned");
    tether_handle_release(h);
    struct tether_close_report rep;
    ck_assert_int_eq(tether_supervisor_close(sup, &rep), 0);
    sup = NULL;
    ck_assert_uint_eq(rep.abandoned, 1);
}
END_TEST

START_TEST(exit_status_is_reported)
{
    tether_handle *h = spawn("exit_7");
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_int_eq(o.code, 7);
    tether_handle_release(h);
}
END_TEST

START_TEST(failure_reaches_owner_and_cancels_siblings)
{
    tether_handle *sib[3];
    for (int i = 0; i < 3; i++)
        sib[i] = spawn("cooperative");
    tether_handle *f = spawn("fails");
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(f, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "failed");
    ck_assert_str_eq(o.message, "deliberate failure 42");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tether_wait(sib[i], tether_now_ns() + 3 * SEC, &o), 0);
        ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
        tether_handle_release(sib[i]);
    }
    ck_assert_ptr_nonnull(tether_supervisor_failure(sup));
    ck_assert_ptr_nonnull(strstr(tether_supervisor_failure(sup), "deliberate failure 42"));
    tether_handle_release(f);
}
END_TEST

START_TEST(one_for_one_leaves_siblings_running)
{
    tether_supervisor_set_strategy(sup, TETHER_ONE_FOR_ONE);
    tether_handle *s = spawn("cooperative");
    tether_handle *f = spawn("fails");
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(f, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_int_eq(tether_wait(s, tether_now_ns() + SEC / 5, &o), TETHER_ETIMEDOUT);
    ck_assert_str_eq(tether_handle_state(s), "running");
    tether_handle_release(s);
    tether_handle_release(f);
}
END_TEST

START_TEST(zero_soft_cancel_kills_at_once)
{
    teardown();
    open_with("0", "0.5", NULL);
    tether_handle *h = spawn("timed_waits");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    ck_assert_int_eq(o.soft_cancel_ns, 0);
    tether_handle_release(h);
}
END_TEST

START_TEST(cancel_is_idempotent_and_harmless_after_exit)
{
    tether_handle *h = spawn("cooperative");
    ck_assert_int_eq(tether_cancel(h), 0);
    ck_assert_int_eq(tether_cancel(h), 0);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_int_eq(tether_cancel(h), 0);
    ck_assert_int_eq(tether_kill(h), 0);
    struct tether_outcome again;
    ck_assert_int_eq(tether_wait(h, tether_now_ns(), &again), 0);
    ck_assert_int_eq(again.kind, o.kind);
    tether_handle_release(h);
}
END_TEST

START_TEST(cancel_racing_exit_gives_exactly_one_outcome)
{
    for (int i = 0; i < 100; i++) {
        tether_handle *h = spawn(i % 2 ? "exit_7" : "cooperative");
        tether_cancel(h);
        struct tether_outcome o;
        ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
        ck_assert(o.kind == TETHER_OUTCOME_EXITED || o.kind == TETHER_OUTCOME_CANCELLED);
        tether_handle_release(h);
    }
}
END_TEST

START_TEST(spawn_of_missing_module_fails_naming_it)
{
    tether_handle *h;
    struct tether_error err;
    ck_assert_int_eq(tether_spawn(sup, "/nonexistent/mod.so:f", 0, &h, &err), TETHER_ESPAWN);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/mod.so"));
    tether_handle_release(h);
    ck_assert_int_eq(tether_spawn(sup, ACTORS ":no_such_function", 0, &h, &err), TETHER_ESPAWN);
    ck_assert_ptr_nonnull(strstr(err.msg, "no function 'no_such_function'"));
    tether_handle_release(h);
    ck_assert_int_eq(tether_spawn(sup, "no-colon", 0, &h, &err), TETHER_EINVAL);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(messages_round_trip)
{
    tether_handle *h = spawn("echo_messages");
    ck_assert_int_eq(tether_send(h, "ping", 4, tether_now_ns() + SEC), 0);
    void *buf;
    size_t len;
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(buf, "ping", 4) == 0);
    free(buf);
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(h);
}
END_TEST

/* A message over max_frame is refused before anything is sent (the actor
 * would take the frame for a protocol error); the channel stays usable. */
START_TEST(send_over_max_frame_is_refused_and_the_channel_stays_usable)
{
    teardown();
    open_with("0.3", "0.3", "max_frame: 4096\n");
    tether_handle *h = spawn("echo_messages");
    static char big[8192];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(tether_send(h, big, 4096, tether_now_ns() + SEC), TETHER_ETOOBIG);
    ck_assert_int_eq(tether_send(h, big, sizeof big, tether_now_ns() + SEC), TETHER_ETOOBIG);
    ck_assert_str_eq(tether_err_name(TETHER_ETOOBIG), "TETHER_ETOOBIG");
    ck_assert(strstr(tether_strerror(TETHER_ETOOBIG), "max_frame") != NULL);
    /* the largest that fits: body = 2 + bin16 header (3) + data */
    ck_assert_int_eq(tether_send(h, big, 4096 - 5, tether_now_ns() + SEC), 0);
    void *buf;
    size_t len;
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
    ck_assert_uint_eq(len, 4096 - 5);
    free(buf);
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(h);
}
END_TEST

/* The engine reads only so far ahead of an owner who does not receive
 * (bench/: the allocator then reuses the memory): a call's reply behind
 * the unreceived messages still gets through, and every message is still
 * delivered, whole and in order. */
START_TEST(call_reply_gets_past_unreceived_messages)
{
    tether_handle *h = spawn("flood_then_serve");
    struct timespec ts = {0, 200 * 1000 * 1000}; /* let the flood fill the read-ahead */
    nanosleep(&ts, NULL);
    struct tether_value a[2] = {{.type = 'i', .v.i = 2}, {.type = 'i', .v.i = 3}}, ret;
    struct tether_error err;
    ck_assert_msg(tether_call(h, "add_i", "ii:i", a, 2, &ret, tether_now_ns() + 3 * SEC, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(ret.v.i, 5);
    for (int i = 0; i < 8; i++) {
        void *buf;
        size_t len;
        ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
        ck_assert_uint_eq(len, 65536);
        ck_assert_int_eq(((char *)buf)[0], 'a' + i);
        ck_assert_int_eq(((char *)buf)[65535], 'a' + i);
        free(buf);
    }
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(h);
}
END_TEST

static int fd_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* tether_handle_fd: readable exactly while a message waits or once ended. */
START_TEST(handle_fd_polls_readable_for_a_message_and_at_the_end)
{
    tether_handle *h = spawn("echo_messages");
    int fd = tether_handle_fd(h);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tether_handle_fd(h), fd);
    ck_assert(!fd_readable(fd, 50));
    ck_assert_int_eq(tether_send(h, "a", 1, tether_now_ns() + SEC), 0);
    ck_assert_int_eq(tether_send(h, "b", 1, tether_now_ns() + SEC), 0);
    ck_assert(fd_readable(fd, 3000));
    void *buf;
    size_t len;
    for (int i = 0; i < 2; i++) {
        /* both echoes arrive; the fd stays readable until the last is taken */
        ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
        free(buf);
    }
    ck_assert(!fd_readable(fd, 50));
    tether_cancel(h);
    ck_assert(fd_readable(fd, 3000)); /* ended */
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns(), &o), 0);
    ck_assert(fd_readable(fd, 0)); /* and stays so */
    tether_handle_release(h);
    ck_assert_int_eq(tether_handle_fd(NULL), TETHER_EINVAL);
}
END_TEST

START_TEST(messages_sent_before_the_end_are_still_delivered)
{
    tether_handle *h = spawn("chatter");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    void *buf;
    size_t len;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + SEC), 0);
        free(buf);
    }
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + SEC), TETHER_ECANCELLED);
    tether_handle_release(h);
}
END_TEST

/* ---- waiters ----------------------------------------------------------------- */

struct waiter {
    tether_handle *h;
    int kind; /* 0 recv, 1 call, 2 send (until full), 3 wait */
    int rc;
    int64_t returned_at;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    int64_t deadline = tether_now_ns() + 10 * SEC; /* far beyond the bound */
    switch (w->kind) {
    case 0: {
        void *buf;
        size_t len;
        w->rc = tether_recv(w->h, &buf, &len, deadline);
        if (w->rc == 0)
            free(buf);
        break;
    }
    case 1: {
        struct tether_value ret;
        struct tether_error err;
        w->rc = tether_call(w->h, "count", ":i", NULL, 0, &ret, deadline, &err);
        break;
    }
    case 2: {
        static char chunk[256 * 1024];
        do
            w->rc = tether_send(w->h, chunk, sizeof chunk, deadline);
        while (w->rc == 0);
        break;
    }
    case 3: {
        struct tether_outcome o;
        w->rc = tether_wait(w->h, deadline, &o);
        break;
    }
    }
    w->returned_at = tether_now_ns();
    return NULL;
}

/* The seed's hang: parent threads parked on an actor that never
 * checkpoints and never reads. Cancelling must release all four. */
START_TEST(cancel_releases_recv_call_send_and_wait_waiters)
{
    tether_handle *h = spawn("never_reads");
    struct waiter w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct waiter){.h = h, .kind = i, .rc = 1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    usleep(200 * 1000); /* let them park: the sender fills the socket */
    int64_t t0 = tether_now_ns();
    tether_cancel(h);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(w[i].rc == TETHER_EABORTED, "waiter %d returned %s", i,
                      tether_err_name(w[i].rc));
        /* within soft_cancel + hard_kill (+ margin), never at the 10 s deadline */
        ck_assert_int_lt(w[i].returned_at - t0, 2 * SEC);
    }
    ck_assert_int_eq(w[3].rc, 0);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns(), &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    tether_handle_release(h);
}
END_TEST

START_TEST(abort_releases_every_waiter)
{
    tether_handle *h = spawn("timed_waits");
    enum { N = 16 };
    struct waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){.h = h, .kind = i % 2 ? 0 : 1, .rc = 1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    usleep(100 * 1000);
    int64_t t0 = tether_now_ns();
    ck_assert_int_eq(tether_abort(h), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].rc, TETHER_EABORTED);
        ck_assert_int_lt(w[i].returned_at - t0, SEC);
    }
    tether_handle_release(h);
}
END_TEST

START_TEST(peer_vanishing_is_lost_and_releases_waiters)
{
    tether_handle *h = spawn("vanish");
    void *buf;
    size_t len;
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), TETHER_ELOST);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "lost");
    tether_handle_release(h);
}
END_TEST

START_TEST(garbage_frame_is_a_protocol_error)
{
    tether_handle *h = spawn("garbage");
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "lost");
    ck_assert_ptr_nonnull(strstr(o.message, "protocol error"));
    tether_handle_release(h);
}
END_TEST

START_TEST(oversized_frame_is_a_protocol_error)
{
    tether_handle *h = spawn("oversized");
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "lost");
    ck_assert_ptr_nonnull(strstr(o.message, "exceeds the maximum"));
    tether_handle_release(h);
}
END_TEST

START_TEST(close_tears_down_every_behaviour_and_reports_abandoned)
{
    const char *fns[] = {"cooperative", "serve", "timed_waits", "busy_loop", "blocked_read"};
    tether_handle *h[5];
    for (int i = 0; i < 5; i++)
        h[i] = spawn(fns[i]);
    struct tether_close_report rep;
    ck_assert_int_eq(tether_supervisor_close(sup, &rep), 0);
    sup = NULL;
    ck_assert_uint_eq(rep.actors, 5);
    ck_assert_uint_eq(rep.abandoned, 1);
    /* handles stay valid after close, until released */
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h[3], tether_now_ns(), &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "abandoned");
    ck_assert_int_eq(tether_wait(h[0], tether_now_ns(), &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    for (int i = 0; i < 5; i++)
        tether_handle_release(h[i]);
}
END_TEST

START_TEST(events_log_every_transition)
{
    teardown();
    snprintf(events_path, sizeof events_path, "/tmp/tether-events-%d.jsonl", (int)getpid());
    unlink(events_path);
    char extra[300];
    snprintf(extra, sizeof extra, "events: %s\n", events_path);
    open_with("0.2", "0.2", extra);
    tether_handle *h = spawn("timed_waits");
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "killed");
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL);
    sup = NULL;
    FILE *fp = fopen(events_path, "r");
    ck_assert_ptr_nonnull(fp);
    char line[1024], all[16384] = "";
    while (fgets(line, sizeof line, fp))
        strncat(all, line, sizeof all - strlen(all) - 1);
    fclose(fp);
    unlink(events_path);
    const char *phases[] = {"\"spawned\"", "\"ready\"", "\"cancel-requested\"",
                            "\"soft-cancel-sent\"", "\"hard-kill\"", "\"channels-aborted\"",
                            "\"reaped\""};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
        ck_assert_msg(strstr(all, phases[i]), "no %s event in:\n%s", phases[i], all);
    ck_assert_ptr_nonnull(strstr(all, "\"outcome\":\"killed\""));
}
END_TEST

START_TEST(hang_dump_lists_actor_state_and_waiters)
{
    tether_handle *h = spawn("timed_waits");
    struct waiter w = {.h = h, .kind = 0, .rc = 1};
    pthread_t t;
    pthread_create(&t, NULL, waiter_main, &w);
    usleep(100 * 1000);
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    tether_supervisor_dump(sup, fp);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(text, "timed_waits: running for"));
    ck_assert_ptr_nonnull(strstr(text, "in recv for"));
    free(text);
    tether_abort(h);
    pthread_join(t, NULL);
    tether_handle_release(h);
}
END_TEST

/* The backend's clock helpers are tether_now_ns()'s clock, and a deadline
 * becomes a poll timeout that never returns early. */
START_TEST(backend_clock_helpers_use_the_tether_clock)
{
    int64_t a = tether_now_ns(), b = tether_backend_now_ns(), c = tether_now_ns();
    ck_assert(a <= b && b <= c);
    ck_assert_int_eq(tether_backend_poll_ms(a - 1), 0);
    ck_assert_int_eq(tether_backend_poll_ms(TETHER_NEVER), INT_MAX);
    /* rounded up: 10 s minus the moment this takes is still 10000 ms */
    int64_t d = tether_backend_now_ns() + 10 * SEC;
    int ms = tether_backend_poll_ms(d);
    int64_t left = d - tether_backend_now_ns();
    ck_assert_msg((int64_t)ms * 1000000 >= left && ms <= 10000, "%d ms for %lld ns", ms,
                  (long long)left);
}
END_TEST

/* An actor that sends past the inbox bound and exits: every message and
 * its exit reach the owner (the channel is drained before the outcome). */
START_TEST(ended_actors_channel_is_drained_before_its_outcome)
{
    tether_handle *h = spawn("flood_numbered");
    usleep(1500 * 1000); /* the owner is busy; the inbox fills to its bound */
    long expect = 0;
    void *buf;
    size_t len;
    while (tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC) == 0) {
        char text[16];
        snprintf(text, sizeof text, "%.*s", (int)len, (char *)buf);
        free(buf);
        ck_assert_int_eq(atol(text), expect);
        expect++;
    }
    ck_assert_int_eq(expect, 65600);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_int_eq(o.code, 7);
    tether_handle_release(h);
}
END_TEST

/* A thread whose TLS destructor is slow must not stall the engine: a
 * sibling's cancel and wait stay prompt. */
START_TEST(slow_thread_exit_does_not_stall_the_supervisor)
{
    tether_handle *slow = spawn("slow_tls_exit");
    tether_handle *sib = spawn("cooperative");
    usleep(100 * 1000); /* the slow one is in its destructor now */
    int64_t t0 = tether_now_ns();
    tether_cancel(sib);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(sib, tether_now_ns() + SEC, &o), 0);
    ck_assert_int_lt(tether_now_ns() - t0, SEC / 2);
    ck_assert_int_eq(tether_wait(slow, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    tether_handle_release(sib);
    tether_handle_release(slow);
}
END_TEST

/* tether_spawn reads its actor's READY itself and then hands the channel
 * to the engine (core/channel.c, tether__chan_read_direct): messages the
 * actor sends at once must reach tether_recv without waiting for the
 * engine's once-a-second round. */
START_TEST(messages_sent_right_after_ready_arrive_at_once)
{
    for (int round = 0; round < 5; round++) {
        tether_handle *h = spawn("chatter");
        for (int i = 0; i < 3; i++) {
            void *buf;
            size_t len;
            ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + SEC / 2), 0);
            ck_assert_int_eq(len, 4);
            free(buf);
        }
        cancel_and_wait(h);
        tether_handle_release(h);
    }
}
END_TEST

/* A caller reads its reply itself when no other thread reads the channel
 * (core/channel.c, read_direct); the others wait for it, or for the
 * engine, which takes the channel back when that call ends. Four threads
 * call one actor at once: every call gets its own reply. */
struct caller {
    tether_handle *h;
    int base, failures;
};

static void *call_many(void *arg)
{
    struct caller *c = arg;
    for (int i = 0; i < 300; i++) {
        struct tether_value a[2] = {{.type = 'i', .v.i = c->base}, {.type = 'i', .v.i = i}}, ret;
        struct tether_error err;
        if (tether_call(c->h, "add_i", "ii:i", a, 2, &ret, tether_now_ns() + 5 * SEC, &err) != 0 ||
            ret.v.i != c->base + i)
            c->failures++;
    }
    return NULL;
}

START_TEST(concurrent_callers_each_get_their_own_reply)
{
    tether_handle *h = spawn("serve");
    pthread_t t[4];
    struct caller c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct caller){h, 1000 * (i + 1), 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, call_many, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(c[i].failures, 0);
    }
    struct tether_outcome o = cancel_and_wait(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(h);
}
END_TEST

/* A caller reading its own reply (no other thread reads the channel) is
 * released by a cancel, and the engine gets the channel back to read the
 * actor's last word. */
struct blocked_call {
    tether_handle *h;
    int rc;
    int64_t returned_at;
};

static void *call_unanswered(void *arg)
{
    struct blocked_call *b = arg;
    struct tether_value ret;
    struct tether_error err;
    b->rc = tether_call(b->h, "count", ":i", NULL, 0, &ret, tether_now_ns() + 10 * SEC, &err);
    b->returned_at = tether_now_ns();
    return NULL;
}

START_TEST(a_cancel_releases_a_caller_that_reads_its_own_reply)
{
    tether_handle *h = spawn("cooperative"); /* sleeps: answers no call */
    struct blocked_call b = {h, 0, 0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, call_unanswered, &b), 0);
    usleep(100 * 1000); /* the caller waits for its reply now */
    int64_t t0 = tether_now_ns();
    ck_assert_int_eq(tether_cancel(h), 0);
    pthread_join(t, NULL);
    ck_assert_int_ne(b.rc, 0);
    ck_assert_int_lt(b.returned_at - t0, 3 * SEC);
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    tether_handle_release(h);
}
END_TEST

/* The engine's thread, by its name (one supervisor in this process). */
static pid_t engine_tid(void)
{
    pid_t found = 0;
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));) {
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        if (fgets(name, sizeof name, fp) && !strcmp(name, "tether-engine\n")) {
            ck_assert_msg(!found, "two engine threads");
            found = (pid_t)atoi(e->d_name);
        }
        fclose(fp);
    }
    closedir(d);
    ck_assert_msg(found, "no thread named tether-engine");
    return found;
}

/* Polls (bounded) until the engine sleeps under `policy`. */
static void engine_policy_becomes(pid_t tid, int policy)
{
    int64_t end = tether_now_ns() + 2 * SEC;
    while (sched_getscheduler(tid) != policy) {
        ck_assert_msg(tether_now_ns() < end, "the engine's policy stays %d, not %d",
                      sched_getscheduler(tid), policy);
        usleep(1000);
    }
}

/* core/teardown.c, calm_sleep: while every actor runs, the engine sleeps as
 * SCHED_BATCH (its wake-ups do not preempt the program); once one is being
 * torn down it sleeps as SCHED_OTHER, so deadlines are acted on at once. */
START_TEST(engine_sleeps_as_batch_only_while_no_actor_is_torn_down)
{
    pid_t tid = engine_tid();
    tether_handle *calm = spawn("serve");
    engine_policy_becomes(tid, SCHED_BATCH);
    tether_handle *stuck = spawn("timed_waits"); /* ignores the cancel: 0.3 s soft, then killed */
    ck_assert_int_eq(tether_cancel(stuck), 0);
    engine_policy_becomes(tid, SCHED_OTHER);
    for (int i = 0; i < 10 && strcmp(tether_handle_state(stuck), "soft-cancel") == 0; i++) {
        ck_assert_int_eq(sched_getscheduler(tid), SCHED_OTHER);
        usleep(10 * 1000);
    }
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(stuck, tether_now_ns() + 3 * SEC, &o), 0);
    engine_policy_becomes(tid, SCHED_BATCH);
    cancel_and_wait(calm);
    tether_handle_release(stuck);
    tether_handle_release(calm);
}
END_TEST

static Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("teardown");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, cooperative_actor_is_cancelled_without_using_the_soft_timeout);
    tcase_add_test(tc, timed_waits_actor_is_killed_after_the_soft_deadline);
    tcase_add_test(tc, blocked_read_actor_is_killed);
    tcase_add_test(tc, busy_loop_actor_is_abandoned_and_counted);
    tcase_add_test(tc, exit_status_is_reported);
    tcase_add_test(tc, failure_reaches_owner_and_cancels_siblings);
    tcase_add_test(tc, one_for_one_leaves_siblings_running);
    tcase_add_test(tc, zero_soft_cancel_kills_at_once);
    tcase_add_test(tc, cancel_is_idempotent_and_harmless_after_exit);
    tcase_add_test(tc, cancel_racing_exit_gives_exactly_one_outcome);
    tcase_add_test(tc, spawn_of_missing_module_fails_naming_it);
    tcase_add_test(tc, messages_round_trip);
    tcase_add_test(tc, send_over_max_frame_is_refused_and_the_channel_stays_usable);
    tcase_add_test(tc, call_reply_gets_past_unreceived_messages);
    tcase_add_test(tc, handle_fd_polls_readable_for_a_message_and_at_the_end);
    tcase_add_test(tc, messages_sent_before_the_end_are_still_delivered);
    tcase_add_test(tc, backend_clock_helpers_use_the_tether_clock);
    tcase_add_test(tc, messages_sent_right_after_ready_arrive_at_once);
    tcase_add_test(tc, concurrent_callers_each_get_their_own_reply);
    tcase_add_test(tc, a_cancel_releases_a_caller_that_reads_its_own_reply);
    tcase_add_test(tc, engine_sleeps_as_batch_only_while_no_actor_is_torn_down);
    suite_add_tcase(s, tc);

    TCase *tw = tcase_create("waiters");
    tcase_add_checked_fixture(tw, setup, teardown);
    tcase_set_timeout(tw, 30);
    tcase_add_test(tw, cancel_releases_recv_call_send_and_wait_waiters);
    tcase_add_test(tw, abort_releases_every_waiter);
    tcase_add_test(tw, peer_vanishing_is_lost_and_releases_waiters);
    tcase_add_test(tw, garbage_frame_is_a_protocol_error);
    tcase_add_test(tw, oversized_frame_is_a_protocol_error);
    tcase_add_test(tw, close_tears_down_every_behaviour_and_reports_abandoned);
    tcase_add_test(tw, events_log_every_transition);
    tcase_add_test(tw, hang_dump_lists_actor_state_and_waiters);
    tcase_add_test(tw, ended_actors_channel_is_drained_before_its_outcome);
    tcase_add_test(tw, slow_thread_exit_does_not_stall_the_supervisor);
    suite_add_tcase(s, tw);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(supervisor_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
