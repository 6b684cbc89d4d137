/* tests/unit/test_outcome.c - the outcome decision (core/outcome.c), one
 * row of the table a case: facts in, kind/code/signal/message/failure out.
 * The rows are listed in outcome.c's header comment; every one is here. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

#define K(x) TETHER_OUTCOME_##x

static const struct tether_outcome reap_exit0 = {.kind = K(EXITED), .code = 0};
static const struct tether_outcome reap_exit3 = {.kind = K(EXITED), .code = 3};
static const struct tether_outcome reap_exit_msg = {.kind = K(EXITED), .code = 0,
                                                   .message = "2 descendants killed"};
static const struct tether_outcome reap_killed = {.kind = K(KILLED), .signal = 9};
static const struct tether_outcome reap_killed_msg = {.kind = K(KILLED), .signal = 9,
                                                      .message = "SIGKILL to the group"};
static const struct tether_outcome reap_segv = {.kind = K(LOST), .signal = 11};
static const struct tether_outcome reap_msg = {.kind = K(LOST), .code = 1,
                                               .message = "thread ended"};

struct row {
    const char *name;
    struct tether__ending in;
    int kind, code, signal;
    const char *message; /* exact, or NULL for none */
    int failure;
};

static const struct row rows[] = {
    /* abandoned, said STOPPED: its word, and the leftover named */
    {"abandoned thread that said stopped keeps its word",
     {.abandoned = 1, .hard_killed = 1, .said = 1, .said_kind = K(CANCELLED),
      .said_text = "bye", .in_process = 1},
     K(CANCELLED), 0, 0,
     "bye (stopped, but its thread did not end within hard_kill: abandoned)", 0},
    {"abandoned process that said exited, no text",
     {.abandoned = 1, .hard_killed = 1, .said = 1, .said_kind = K(EXITED), .said_code = 4},
     K(EXITED), 4, 0, "(stopped, but its process did not end within hard_kill: abandoned)", 0},
    {"abandoned actor that said it failed is a failure",
     {.abandoned = 1, .said = 1, .said_kind = K(FAILED), .said_text = "boom", .in_process = 1},
     K(FAILED), 0, 0, "boom (stopped, but its thread did not end within hard_kill: abandoned)",
     1},
    /* abandoned */
    {"abandoned without a word",
     {.abandoned = 1, .hard_killed = 1, .requested = TETHER__REQ_CANCEL},
     K(ABANDONED), 0, 0, "did not stop within hard_kill; abandoned", 0},
    {"abandoned wins over a lost channel",
     {.abandoned = 1, .lost_reason = "protocol error: x"},
     K(ABANDONED), 0, 0, "did not stop within hard_kill; abandoned", 0},
    /* channel lost */
    {"lost channel, reap with a message",
     {.lost_reason = "channel closed without a stopped message", .reaped = &reap_msg},
     K(LOST), 1, 0, "channel closed without a stopped message; thread ended", 1},
    {"lost channel, reap with a signal",
     {.lost_reason = "channel closed without a stopped message", .reaped = &reap_segv},
     K(LOST), 0, 11, "channel closed without a stopped message; killed by signal 11", 1},
    {"lost channel, reap says exited",
     {.lost_reason = "protocol error: bad kind", .reaped = &reap_exit3},
     K(LOST), 3, 0, "protocol error: bad kind; exited with status 3", 1},
    {"lost channel, no reap result",
     {.lost_reason = "protocol error: bad kind"},
     K(LOST), 0, 0, "protocol error: bad kind", 1},
    {"lost channel wins over a stopped word",
     {.lost_reason = "protocol error: y", .said = 1, .said_kind = K(EXITED),
      .reaped = &reap_killed, .hard_killed = 1},
     K(LOST), 0, 9, "protocol error: y; killed by signal 9", 1},
    {"lost channel after a request is no failure",
     {.lost_reason = "protocol error: z", .requested = TETHER__REQ_CANCEL},
     K(LOST), 0, 0, "protocol error: z", 0},
    /* said STOPPED */
    {"said cancelled",
     {.said = 1, .said_kind = K(CANCELLED), .requested = TETHER__REQ_CANCEL,
      .reaped = &reap_exit0},
     K(CANCELLED), 0, 0, NULL, 0},
    {"said exited 7 with text",
     {.said = 1, .said_kind = K(EXITED), .said_code = 7, .said_text = "done",
      .reaped = &reap_exit0},
     K(EXITED), 7, 0, "done", 0},
    {"said exited, the teardown adds its text",
     {.said = 1, .said_kind = K(EXITED), .said_text = "done", .reaped = &reap_exit_msg},
     K(EXITED), 0, 0, "done; 2 descendants killed", 0},
    {"said cancelled without text, the teardown adds its text",
     {.said = 1, .said_kind = K(CANCELLED), .requested = TETHER__REQ_CANCEL,
      .reaped = &reap_exit_msg},
     K(CANCELLED), 0, 0, "2 descendants killed", 0},
    {"said failed is a failure even on request",
     {.said = 1, .said_kind = K(FAILED), .said_text = "it broke",
      .requested = TETHER__REQ_CANCEL, .reaped = &reap_exit0},
     K(FAILED), 0, 0, "it broke", 1},
    {"said stopped, then hard killed: its word stands",
     {.said = 1, .said_kind = K(CANCELLED), .hard_killed = 1, .reaped = &reap_killed},
     K(CANCELLED), 0, 0, NULL, 0},
    /* owner aborted, not hard, exited */
    {"owner abort, actor exited by itself",
     {.requested = TETHER__REQ_OWNER_ABORT, .reaped = &reap_exit0},
     K(CANCELLED), 0, 0, "stopped after its channel was closed", 0},
    {"owner abort, but hard killed: falls through to killed",
     {.requested = TETHER__REQ_OWNER_ABORT, .hard_killed = 1, .reaped = &reap_killed},
     K(KILLED), 0, 9, NULL, 0},
    {"owner abort, reap says lost: lost",
     {.requested = TETHER__REQ_OWNER_ABORT, .reaped = &reap_segv},
     K(LOST), 0, 11, "ended without a stopped message", 0},
    /* hard, reap says killed */
    {"hard killed, reap says killed",
     {.hard_killed = 1, .requested = TETHER__REQ_CANCEL, .reaped = &reap_killed_msg},
     K(KILLED), 0, 9, "SIGKILL to the group", 0},
    {"killed without hard kill is lost",
     {.reaped = &reap_killed}, K(LOST), 0, 9, "ended without a stopped message", 1},
    /* otherwise */
    {"exited without a word and no request: lost, a failure",
     {.reaped = &reap_exit3}, K(LOST), 3, 0, "ended without a stopped message", 1},
    {"exited without a word after a cancel: lost, no failure",
     {.requested = TETHER__REQ_CANCEL, .reaped = &reap_exit0},
     K(LOST), 0, 0, "ended without a stopped message", 0},
    {"reap message is kept",
     {.hard_killed = 1, .reaped = &reap_msg}, K(LOST), 1, 0, "thread ended", 1},
    {"no reap, no word",
     {0}, K(LOST), 0, 0, "ended without a stopped message", 1},
};

START_TEST(every_row_decides_as_documented)
{
    const struct row *r = &rows[_i];
    struct tether__decision d;
    char buf[TETHER_ERROR_MSG_MAX];
    memset(&d, 0x5a, sizeof d);
    tether__outcome_decide(&r->in, &d, buf, sizeof buf);
    ck_assert_msg(d.kind == r->kind, "%s: kind %s, want %s", r->name, tether_outcome_name(d.kind),
                  tether_outcome_name(r->kind));
    ck_assert_msg(d.code == r->code, "%s: code %d, want %d", r->name, d.code, r->code);
    ck_assert_msg(d.signal == r->signal, "%s: signal %d, want %d", r->name, d.signal, r->signal);
    if (r->message)
        ck_assert_msg(d.message && !strcmp(d.message, r->message), "%s: message '%s', want '%s'",
                      r->name, d.message ? d.message : "(null)", r->message);
    else
        ck_assert_msg(!d.message, "%s: message '%s', want none", r->name, d.message);
    ck_assert_msg(d.failure == r->failure, "%s: failure %d, want %d", r->name, d.failure,
                  r->failure);
}
END_TEST

/* The decision reads only its arguments: the same facts, the same answer,
 * and the input is left as it was. */
START_TEST(decision_is_pure)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct tether__ending in = rows[i].in, copy = in;
        struct tether__decision a, b;
        char ba[TETHER_ERROR_MSG_MAX], bb[TETHER_ERROR_MSG_MAX];
        tether__outcome_decide(&in, &a, ba, sizeof ba);
        tether__outcome_decide(&in, &b, bb, sizeof bb);
        ck_assert(memcmp(&in, &copy, sizeof in) == 0);
        ck_assert_int_eq(a.kind, b.kind);
        ck_assert_int_eq(a.failure, b.failure);
        ck_assert_str_eq(a.message ? a.message : "", b.message ? b.message : "");
    }
}
END_TEST

/* A long reason is cut to the buffer, never overrun. */
START_TEST(long_messages_are_truncated_to_the_buffer)
{
    char reason[600];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    struct tether__ending in = {.lost_reason = reason, .reaped = &reap_msg};
    struct tether__decision d;
    char buf[64];
    tether__outcome_decide(&in, &d, buf, sizeof buf);
    ck_assert_ptr_eq(d.message, buf);
    ck_assert_uint_eq(strlen(buf), sizeof buf - 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outcome");
    TCase *tc = tcase_create("rows");
    tcase_add_loop_test(tc, every_row_decides_as_documented, 0, sizeof rows / sizeof rows[0]);
    tcase_add_test(tc, decision_is_pure);
    tcase_add_test(tc, long_messages_are_truncated_to_the_buffer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
