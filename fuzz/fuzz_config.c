/* fuzz/fuzz_config.c - libFuzzer target: the YAML configuration loader
 * (tether_config_parse) on arbitrary bytes. A parse either fails with a
 * message or yields a configuration whose invariants hold; it never
 * crashes, leaks or reads out of bounds. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tether/tether.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tether_config *cfg = NULL;
    struct tether_error err;
    memset(&err, 0, sizeof err);
    int rc = tether_config_parse((const char *)data, size, "fuzz.yaml", "/fuzz", &cfg, &err);
    if (rc) {
        if (cfg || !memchr(err.msg, '\0', sizeof err.msg) || !err.msg[0])
            abort(); /* a failure leaves no config and always says why */
        return 0;
    }
    if (!cfg || !cfg->backend || tether_config_find(cfg, cfg->backend) == NULL)
        abort(); /* the default backend is one of the configured ones */
    const struct tether_timeouts *t = &cfg->timeouts;
    if (!(isfinite(t->spawn) && t->spawn >= 0 && isfinite(t->soft_cancel) && t->soft_cancel >= 0 &&
          isfinite(t->hard_kill) && t->hard_kill >= 0))
        abort();
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tether_backend_config *b = &cfg->backends[i];
        if (!b->name || !b->path || b->path[0] != '/')
            abort(); /* relative paths are resolved against the folder */
        const struct tether_timeouts *bt = &b->timeouts;
        if (!(isfinite(bt->spawn) && bt->spawn >= 0 && isfinite(bt->soft_cancel) &&
              bt->soft_cancel >= 0 && isfinite(bt->hard_kill) && bt->hard_kill >= 0))
            abort();
        for (size_t j = 0; j < b->n_options; j++)
            if (!b->options[j].key || !b->options[j].value)
                abort();
    }
    tether_config_free(cfg);
    return 0;
}
