/* SPDX-License-Identifier: Apache-2.0 */
/* x509-verify CA_BUNDLE.pem CERT.der — x509_verify_der for integration tests
 * (tests/integration/test-x509-ek.sh). Prints the SubjectPublicKeyInfo as hex on success.
 * Exit: 0 verified, 2 -EKEYREJECTED, 3 -ETIME, 4 -EBADMSG, 1 anything else; the reason on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto-x509.h"

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t cap = 0, len = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len + 4097 > cap) {
			char *nb = realloc(b, cap = len + 65536);
			if (!nb) {
				free(b);
				fclose(f);
				return NULL;
			}
			b = nb;
		}
		size_t k = fread(b + len, 1, 4096, f);
		len += k;
		if (k == 0)
			break;
	}
	fclose(f);
	b[len] = 0;
	*n = len;
	return b;
}

int main(int argc, char **argv)
{
	char *ca, *der;
	uint8_t *spki = NULL;
	size_t ca_n, der_n, spki_n;
	const char *reason = NULL;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s CA_BUNDLE.pem CERT.der\n", argv[0]);
		return 1;
	}
	ca = slurp(argv[1], &ca_n);
	der = slurp(argv[2], &der_n);
	if (!ca || !der) {
		fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
		return 1;
	}
	r = x509_verify_der((const uint8_t *)der, der_n, ca, &spki, &spki_n, &reason);
	if (r < 0) {
		fprintf(stderr, "%s: %s (%s)\n", argv[2], strerror(-r), reason ? reason : "no reason");
		return r == -EKEYREJECTED ? 2 : r == -ETIME ? 3 : r == -EBADMSG ? 4 : 1;
	}
	for (size_t i = 0; i < spki_n; i++)
		printf("%02x", spki[i]);
	printf("\n");
	free(spki);
	free(ca);
	free(der);
	return 0;
}
