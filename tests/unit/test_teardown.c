/* tests/unit/test_teardown.c - the teardown table (core/teardown.c) is the
 * documented one (docs/teardown.md): every (state, event) cell is checked
 * against the document, so code and docs cannot drift; and the table keeps
 * its own rules (every cell filled, nothing leaves a final state). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define DOC TOP_SRCDIR "/docs/teardown.md"

/* Split a markdown table row "| a | b |" into trimmed cells; returns count. */
static int split_row(char *line, char **cells, int max)
{
    int n = 0;
    char *p = strchr(line, '|');
    if (!p)
        return 0;
    p++;
    while (n < max) {
        char *bar = strchr(p, '|');
        if (!bar)
            break;
        *bar = '\0';
        while (*p == ' ')
            p++;
        char *e = bar;
        while (e > p && e[-1] == ' ')
            *--e = '\0';
        cells[n++] = p;
        p = bar + 1;
    }
    return n;
}

START_TEST(documented_table_matches_the_engine_cell_by_cell)
{
    FILE *fp = fopen(DOC, "r");
    ck_assert_msg(fp, "cannot open %s", DOC);
    char line[4096];
    int header_seen = 0, rows_seen = 0, checked = 0;
    int seen[TETHER__N_STATES] = {0};
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *cells[64];
        if (!header_seen) {
            if (strncmp(line, "| state \\ event |", 17) != 0)
                continue;
            int n = split_row(line, cells, 64);
            ck_assert_msg(n == 1 + TETHER__N_EVENTS, "%s: header has %d events, the engine %d",
                          DOC, n - 1, TETHER__N_EVENTS);
            for (int e = 0; e < TETHER__N_EVENTS; e++)
                ck_assert_msg(!strcmp(cells[1 + e], tether__event_name(e)),
                              "%s: column %d is '%s', the engine's event %d is '%s'", DOC, e + 1,
                              cells[1 + e], e, tether__event_name(e));
            header_seen = 1;
            continue;
        }
        if (line[0] != '|')
            break; /* end of the table */
        if (!strncmp(line, "|---", 4))
            continue;
        int n = split_row(line, cells, 64);
        ck_assert_msg(n == 1 + TETHER__N_EVENTS, "%s: row '%s' has %d cells", DOC, line, n);
        int s = -1;
        for (int i = 0; i < TETHER__N_STATES; i++)
            if (!strcmp(cells[0], tether__state_name(i)))
                s = i;
        ck_assert_msg(s >= 0, "%s: row for unknown state '%s'", DOC, cells[0]);
        ck_assert_msg(!seen[s], "%s: state '%s' listed twice", DOC, cells[0]);
        seen[s] = 1;
        rows_seen++;
        for (int e = 0; e < TETHER__N_EVENTS; e++) {
            const char *code = tether__action_name(tether__teardown_cell(s, e)->action);
            ck_assert_msg(!strcmp(cells[1 + e], code),
                          "%s: (%s, %s) documents '%s', the engine does '%s'", DOC,
                          tether__state_name(s), tether__event_name(e), cells[1 + e], code);
            checked++;
        }
    }
    fclose(fp);
    ck_assert_msg(header_seen, "%s: no table (a line starting '| state \\ event |')", DOC);
    ck_assert_int_eq(rows_seen, TETHER__N_STATES);
    ck_assert_int_eq(checked, TETHER__N_STATES * TETHER__N_EVENTS);
}
END_TEST

/* What `tether doc teardown` prints is the document's table, line for line. */
START_TEST(printed_table_is_the_documented_one)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    tether_teardown_table(mem);
    fclose(mem);
    FILE *fp = fopen(DOC, "r");
    ck_assert_msg(fp, "cannot open %s", DOC);
    static char doc[1 << 16];
    size_t got = fread(doc, 1, sizeof doc - 1, fp);
    doc[got] = '\0';
    fclose(fp);
    ck_assert_msg(strstr(doc, text), "%s does not hold the table the engine prints:\n%s", DOC,
                  text);
    free(text);
}
END_TEST

START_TEST(every_cell_is_filled)
{
    for (int s = 0; s < TETHER__N_STATES; s++)
        for (int e = 0; e < TETHER__N_EVENTS; e++) {
            const struct tether__cell *c = tether__teardown_cell(s, e);
            ck_assert_ptr_nonnull(c);
            ck_assert_msg(c->action < TETHER__N_ACTIONS, "(%d, %d): action %d", s, e, c->action);
            ck_assert_str_ne(tether__action_name(c->action), "?");
            /* an IGNORE or IMPOSSIBLE cell says why */
            if (c->action == TETHER__A_IGNORE || c->action == TETHER__A_IMPOSSIBLE)
                ck_assert_msg(c->why && *c->why, "(%s, %s) has no reason",
                              tether__state_name(s), tether__event_name(e));
        }
    ck_assert_ptr_null(tether__teardown_cell(TETHER__N_STATES, 0));
    ck_assert_ptr_null(tether__teardown_cell(0, TETHER__N_EVENTS));
    ck_assert_ptr_null(tether__teardown_cell(-1, 0));
}
END_TEST

/* A final state is final: no cell of its row acts. */
START_TEST(final_states_never_act)
{
    int finals[] = {TETHER__ST_REAPED, TETHER__ST_ABANDONED};
    for (size_t i = 0; i < 2; i++)
        for (int e = 0; e < TETHER__N_EVENTS; e++) {
            int a = tether__teardown_cell(finals[i], e)->action;
            ck_assert_msg(a == TETHER__A_IGNORE || a == TETHER__A_IMPOSSIBLE, "(%s, %s) does '%s'",
                          tether__state_name(finals[i]), tether__event_name(e),
                          tether__action_name(a));
        }
}
END_TEST

/* Every live state can always be ended: the backend's exit is reaped, and a
 * close that expires forces it (the teardown bound rests on these). */
START_TEST(every_live_state_ends_on_exit_and_on_close)
{
    for (int s = 0; s < TETHER__N_STATES; s++) {
        if (s == TETHER__ST_REAPED || s == TETHER__ST_ABANDONED || s == TETHER__ST_RESTARTING)
            continue;
        ck_assert_int_eq(tether__teardown_cell(s, TETHER__EV_EXITED)->action, TETHER__A_REAPED);
        ck_assert_int_eq(tether__teardown_cell(s, TETHER__EV_CLOSE_EXPIRED)->action,
                         TETHER__A_FORCE);
        /* every phase with a deadline escalates on it */
        int a = tether__teardown_cell(s, TETHER__EV_DEADLINE)->action;
        if (s == TETHER__ST_RUNNING)
            ck_assert_int_eq(a, TETHER__A_IMPOSSIBLE);
        else
            ck_assert(a == TETHER__A_HARD || a == TETHER__A_ABANDON);
    }
}
END_TEST

/* Between instances (issue 18): only the backoff's deadline respawns;
 * every request, a close and a give-up end it for good, at once. */
START_TEST(restarting_ends_on_every_request_and_respawns_only_on_its_deadline)
{
    int ends[] = {TETHER__EV_CANCEL, TETHER__EV_KILL, TETHER__EV_OWNER_ABORT, TETHER__EV_CLOSE,
                  TETHER__EV_CLOSE_EXPIRED, TETHER__EV_SIBLING};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
        ck_assert_int_eq(tether__teardown_cell(TETHER__ST_RESTARTING, ends[i])->action,
                         TETHER__A_END);
    for (int e = 0; e < TETHER__N_EVENTS; e++) {
        int a = tether__teardown_cell(TETHER__ST_RESTARTING, e)->action;
        ck_assert(a != TETHER__A_RESPAWN || e == TETHER__EV_DEADLINE);
        for (int s = 0; s < TETHER__N_STATES; s++)
            if (s != TETHER__ST_RESTARTING)
                ck_assert_int_ne(tether__teardown_cell(s, e)->action, TETHER__A_RESPAWN);
    }
    ck_assert_int_eq(tether__teardown_cell(TETHER__ST_RESTARTING, TETHER__EV_DEADLINE)->action,
                     TETHER__A_RESPAWN);
    /* a sibling's restart tears a live actor down like a cancel */
    ck_assert_int_eq(tether__teardown_cell(TETHER__ST_RUNNING, TETHER__EV_RESTART)->action,
                     TETHER__A_SOFT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("teardown");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, documented_table_matches_the_engine_cell_by_cell);
    tcase_add_test(tc, printed_table_is_the_documented_one);
    tcase_add_test(tc, every_cell_is_filled);
    tcase_add_test(tc, final_states_never_act);
    tcase_add_test(tc, every_live_state_ends_on_exit_and_on_close);
    tcase_add_test(tc, restarting_ends_on_every_request_and_respawns_only_on_its_deadline);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
