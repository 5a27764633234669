/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

#include "proto/command.h"

/* Applies the device policy's usb_storage and screen_lock to this machine (executor-enforce.c:
 * a modprobe drop-in and sysfs de-authorization for USB mass storage, a logind drop-in for the
 * idle lock). Idempotent; called when a policy is applied and when trustpcd starts. Writes a
 * one-line summary for the command's result. Negative errno when a setting could not be
 * enforced (logged; the others are still applied). */
int exec_enforce_policy(const DevicePolicy *p, char *summary, size_t size);
