/* SPDX-License-Identifier: Apache-2.0 */
/* The device policy's machine settings, enforced by the executor (issue 4 item 5):
 *
 * - usb_storage = false: a udev rule in /run/udev/rules.d de-authorizes every USB interface of
 *   class 08 (mass storage) that appears (Documentation/usb/authorization.rst: the driver is
 *   unbound, no block device stays), also when the driver module is loaded already; modprobe
 *   refuses to load usb_storage and uas (a drop-in in /run/modprobe.d); and the interfaces present
 *   now are de-authorized through sysfs: a stick plugged in before the policy arrived stops
 *   working too. usb_storage = true removes both drop-ins and authorizes those interfaces again.
 * - screen_lock = N > 0: logind locks idle sessions after N seconds (IdleAction=lock,
 *   IdleActionSec=N in a drop-in in /run/systemd/logind.conf.d); logind is told to reload (its
 *   SIGHUP handler, through systemd's KillUnit). 0 removes the drop-in.
 *
 * /run is empty at boot: trustpcd applies the stored policy again when it starts. The files are
 * written atomically; a reader sees the old or the new content, never half of one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/macro.h"
#include "executor-enforce.h"

#define MODPROBE_DIR "/run/modprobe.d"
#define MODPROBE_CONF MODPROBE_DIR "/50-trustpc-usb-storage.conf"
#define UDEV_DIR "/run/udev/rules.d"
#define UDEV_RULES UDEV_DIR "/50-trustpc-usb-storage.rules"
#define LOGIND_DIR "/run/systemd/logind.conf.d"
#define LOGIND_CONF LOGIND_DIR "/50-trustpc-screen-lock.conf"
#define USB_DEVICES "/sys/bus/usb/devices"
#define USB_CLASS_MASS_STORAGE "08"

static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int write_small(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Sets "authorized" of every mass-storage interface to `value`; returns how many changed. */
static int usb_mass_storage_authorize(bool value, unsigned *ret_changed)
{
	DIR *d = opendir(USB_DEVICES);
	unsigned changed = 0, failed = 0;
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : -errno; /* no USB bus at all */
	while ((de = readdir(d))) {
		char path[PATH_MAX], cls[16], cur[16];

		if (!strchr(de->d_name, ':')) /* "1-1:1.0" is an interface, "1-1" a device */
			continue;
		snprintf(path, sizeof(path), USB_DEVICES "/%s/bInterfaceClass", de->d_name);
		if (read_small(path, cls, sizeof(cls)) < 0 || !streq(cls, USB_CLASS_MASS_STORAGE))
			continue;
		snprintf(path, sizeof(path), USB_DEVICES "/%s/authorized", de->d_name);
		if (read_small(path, cur, sizeof(cur)) < 0 || streq(cur, value ? "1" : "0"))
			continue;
		if (write_small(path, value ? "1" : "0") < 0) {
			log_warning("Cannot %s USB interface %s.", value ? "authorize" : "de-authorize",
				    de->d_name);
			failed++;
		} else
			changed++;
	}
	closedir(d);
	*ret_changed = changed;
	return failed > 0 ? -EIO : 0;
}

static int mkdir_p(const char *dir)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1;; s++)
		if (*s == '/' || *s == 0) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				return -errno;
			if (c == 0)
				return 0;
			*s = c;
		}
}

static int file_put(const char *dir, const char *path, const char *text, bool *ret_changed)
{
	_cleanup_free_ char *old = NULL;
	size_t n = 0;
	int r;

	*ret_changed = false;
	if (!text) {
		if (unlink(path) < 0)
			return errno == ENOENT ? 0 : -errno;
		*ret_changed = true;
		return 0;
	}
	if (read_full_file(path, 4096, false, &old, &n) >= 0 && n == strlen(text) && memcmp(old, text, n) == 0)
		return 0;
	r = mkdir_p(dir);
	if (r < 0)
		return r;
	r = write_file_atomic(path, text, strlen(text), 0644);
	if (r >= 0)
		*ret_changed = true;
	return r;
}

static int logind_reload(void)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
				       "org.freedesktop.systemd1.Manager", "KillUnit", &err, NULL, "ssi",
				       "systemd-logind.service", "main", SIGHUP);
	if (r < 0)
		log_info("logind not reloaded (%s): the screen-lock setting applies from its next start.",
			 err.message ?: strerror(-r));
	sd_bus_error_free(&err);
	return r;
}

int exec_enforce_policy(const DevicePolicy *p, char *summary, size_t size)
{
	char conf[256];
	unsigned usb_changed = 0;
	bool changed;
	int r, ret = 0;

	/* USB mass storage */
	r = file_put(MODPROBE_DIR, MODPROBE_CONF,
		     p->usb_storage ? NULL
				    : "# trustpcd: the device policy blocks USB mass storage.\n"
				      "blacklist usb_storage\nblacklist uas\n"
				      "install usb_storage /bin/false\ninstall uas /bin/false\n",
		     &changed);
	if (r < 0) {
		log_error_errno(r, "Cannot write %s: %m", MODPROBE_CONF);
		ret = r;
	}
	r = file_put(UDEV_DIR, UDEV_RULES,
		     p->usb_storage ? NULL
				    : "# trustpcd: the device policy blocks USB mass storage.\n"
				      "ACTION==\"add\", SUBSYSTEM==\"usb\", ENV{DEVTYPE}==\"usb_interface\", "
				      "ATTR{bInterfaceClass}==\"08\", ATTR{authorized}=\"0\"\n",
		     &changed);
	if (r < 0) {
		log_error_errno(r, "Cannot write %s: %m", UDEV_RULES);
		if (ret == 0)
			ret = r;
	}
	r = usb_mass_storage_authorize(p->usb_storage, &usb_changed);
	if (r < 0 && ret == 0)
		ret = r;

	/* screen lock */
	if (p->screen_lock > 0)
		snprintf(conf, sizeof(conf),
			 "# trustpcd: the device policy locks idle sessions.\n[Login]\nIdleAction=lock\n"
			 "IdleActionSec=%us\n",
			 p->screen_lock);
	r = file_put(LOGIND_DIR, LOGIND_CONF, p->screen_lock > 0 ? conf : NULL, &changed);
	if (r < 0) {
		log_error_errno(r, "Cannot write %s: %m", LOGIND_CONF);
		if (ret == 0)
			ret = r;
	} else if (changed)
		(void)logind_reload();

	snprintf(summary, size, "USB storage %s%s, screen lock %s",
		 p->usb_storage ? "allowed" : "blocked",
		 usb_changed == 0 ? ""
		 : p->usb_storage ? " (interfaces authorized again)"
				  : " (attached devices de-authorized)",
		 p->screen_lock > 0 ? "after idle time" : "not enforced");
	return ret;
}
