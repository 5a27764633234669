/* SPDX-License-Identifier: Apache-2.0 */
/* The trustpc-tpm2 LUKS2 token: anyone who can write the disk header can write it (LUKS2 header
 * checksums are not authentication), so it is parsed as hostile input. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "disk-token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DiskToken t = {}, u = {};
	const char *why = NULL;
	char *json = NULL, *again = NULL;

	if (disk_token_parse((const char *)data, size, &t, &why) < 0) {
		assert(why);
		return 0;
	}
	/* Round trip: format(parse(x)) parses, and formats to the same text. */
	if (disk_token_format(&t, &json) < 0)
		abort();
	if (disk_token_parse(json, strlen(json), &u, &why) < 0)
		abort();
	if (disk_token_format(&u, &again) < 0 || strcmp(json, again) != 0)
		abort();
	free(json);
	free(again);
	disk_token_done(&t);
	disk_token_done(&u);
	return 0;
}
