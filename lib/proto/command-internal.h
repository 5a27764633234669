/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared between command.c (the CBOR payloads) and command-policy.c (the JSON document): one set
 * of value rules, so that a policy the server may sign is one the device may store. */

#include "proto/command.h"

/* -EBADMSG with *ret_reason ("<prefix>.heartbeat: bad value", …) when p breaks a rule;
 * prefix is "command.args" or "policy". */
int device_policy_check(const DevicePolicy *p, bool json, const char **ret_reason);
