/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Reading secrets (PINs, recovery keys) without ever taking them from argv. */

#include <stdbool.h>

/* Takes the secret from environment variable env_name if set (then the variable is wiped in place
 * and removed from the environment), else asks on the controlling terminal with echo off.
 * -ENXIO when neither is available (no terminal), -ECANCELED on empty input or EOF.
 * *ret is secure memory: free with secure_free(). With confirm, asks twice and compares. */
int secret_acquire(const char *env_name, const char *prompt, bool confirm, char **ret);

/* Wipes the value of an environment variable in place (so /proc/self/environ does not keep it)
 * and unsets it. */
void env_wipe(const char *name);
