/* libFuzzer target for CMS re-wrapping: arbitrary DER/BER through
 * sg_cms_encrypted_content and sg_cms_rewrap with test-only keys. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cms-rewrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Test-only RSA and P-256 recipients (old) and a P-256 certificate (new);
 * the seeds in fuzz/corpus/cms-rewrap/ are encrypted to them. */
static const char old_rsa_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIDCTCCAfGgAwIBAgIUEbCiHIOTEkgW73K/8pAIaWHilb8wDQYJKoZIhvcNAQEL\n"
	"BQAwEzERMA8GA1UEAwwIZnV6eiBvbGQwIBcNMjYxMTI1MDMyMDEzWhgPMjEyNjEx\n"
	"MDEwMzIwMTNaMBMxETAPBgNVBAMMCGZ1enogb2xkMIIBIjANBgkqhkiG9w0BAQEF\n"
	"AAOCAQ8AMIIBCgKCAQEApxQCod+vyLgxqvR+RVVrgVczOgVkSOJOktL2K591KD9q\n"
	"0XHkgcnbPZkbcePs4z46JccncSGbV4YJD5mTa1mkI3iP6pa/nmGQXYhXEpnz0/RT\n"
	"Y8vcNUINtkUl9N6ynM9Sq+XjpvWN/uNk/ABFi2WPJIi5h4geT7NKpruAP/2YjpxU\n"
	"EuSvfLvbppRdkeoLoQXIYeGZadK1YPWG9gkkdMGAUI/R/DH0TBS8ve8UHBuK2wMF\n"
	"QnaD0OEHGAVTSSOYTranDgWYxDc9DOV8at5+tNY01MITRiTks9wwrfICFVHOcoDZ\n"
	"7f2zIUTgGX0A25j6+g9X+EFBX/uZSSHvmxOsCaHutQIDAQABo1MwUTAdBgNVHQ4E\n"
	"FgQUUd12wQ+WE7pJZiPTT0IXUCR7N7MwHwYDVR0jBBgwFoAUUd12wQ+WE7pJZiPT\n"
	"T0IXUCR7N7MwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAdzJv\n"
	"AW72u62tp7TovPox3GBIxU7OCA2GziF+jBdigxKap3JrCVcvfvFmmk1lQJ95eHRw\n"
	"yeJWWz3LJE7LC/2zPd271F5paIb1zBbLbPjCDF9On35kUg3R8uktFZrxbfW+kw0X\n"
	"SUQVk63FWWZzN5MwBv608FzoW3WS+T8ixLC4Cy9XT6BI0AZbGBMflReNO2OeMnf9\n"
	"6HOvolFcKhDC0aUk6NZkYGIGydIIxpQL5xy7C/wFuH94s8TiQmKNUi3A3te5PpIW\n"
	"Be21BIe12g8bZv3H/yiCLrpX2YS4g48ENz9DoBlOiHofkZSY/fL3W3jOw8aldDM6\n"
	"FdntgVU65aoDxurSeQ==\n"
	"-----END CERTIFICATE-----\n"
;

static const char old_rsa_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCnFAKh36/IuDGq\n"
	"9H5FVWuBVzM6BWRI4k6S0vYrn3UoP2rRceSByds9mRtx4+zjPjolxydxIZtXhgkP\n"
	"mZNrWaQjeI/qlr+eYZBdiFcSmfPT9FNjy9w1Qg22RSX03rKcz1Kr5eOm9Y3+42T8\n"
	"AEWLZY8kiLmHiB5Ps0qmu4A//ZiOnFQS5K98u9umlF2R6guhBchh4Zlp0rVg9Yb2\n"
	"CSR0wYBQj9H8MfRMFLy97xQcG4rbAwVCdoPQ4QcYBVNJI5hOtqcOBZjENz0M5Xxq\n"
	"3n601jTUwhNGJOSz3DCt8gIVUc5ygNnt/bMhROAZfQDbmPr6D1f4QUFf+5lJIe+b\n"
	"E6wJoe61AgMBAAECggEAGFkHqyxMUx1Yi5e2oQb6NC6PdgicHSzxk17v5dqGebeI\n"
	"Kv6EdM+ERh0+TSIQfusuERxNKKTjnOUZA+929sFo9IxYuLCAOyXvolnAiqLpz/z+\n"
	"fAAU1qQKGIJKLj2X3NcvroJBYy7MoxTjPgASImbJ7eKI2vHgrO+tVM/lOC4OIdX0\n"
	"pH5j1bi8CJtizFI4z84Cra6dWBNFEYEzIeBjpgxuyA8V8+P5PN/Xl4n620cnLUh8\n"
	"8OEEFke9xK1G/uHvEAoYvXjzA6MZAyUwVnn9REpPFGtOxDSqxx9U5iXwdGe5Gq27\n"
	"y+l4Auvwsx4RhuRt2wCmBPBJ5HcrByp6i1ngm0OBnwKBgQDlsIYcIjBMMUijfJ6X\n"
	"6FV3b3gmuglvkjiGJ3vxPTGbyf7f2YhNm5K23zgVV1TzepU9I5NckS89dI6vGMSo\n"
	"hv75NvBNwnB8Dl0tu2AmP3axqvgWRjYO733sHVM6wSkqSO4AVgJds7fDbY76Cc/e\n"
	"Y2QWPs0TGEHCFU3KxxE9crnRSwKBgQC6N3Q2NCihUIId1P1CNk0ZMAdJrvqhSQdD\n"
	"LHY9swzLaOIjM85v+K2Ko0J6KHMOHFAu4XcQROLFs03MrGYfL29I9UmFzRag4CFd\n"
	"GiQxt8smnP/ZA4o8nBBtBwWPJl8KoG5J7dSoBEa+9c9szLh8avaohNBvLm8U/f2s\n"
	"IV7Xy3s//wKBgCHgcUdA+6KhOjdyr+lzyPc+p5f+pFmiVVfkBvHDtsdleYQGj4Xy\n"
	"xibWsWzkXpEyqURFNPzYJQGJaWoF2yuIDZ8wLS0q2nBRpgiStFGv1o/JyaFvZZW6\n"
	"WPY0NQxbZPjpnMDL7rlnQlk+lXHndJM2UZK+XHzOfRRlE/4ucip/+0wVAoGBAKtG\n"
	"EfdA5hXpLKQvoHjj5OnDyRA2hoMN3kYkgOSi6KO2ZjgmkDtgqI2ZN62PwrM5y24z\n"
	"JgWqtkFMd8RG1O7d/CdIpEUSqztwqn8tahjoiUuMn62EmgLBMEJ3cN+HVWc6w/Xv\n"
	"b+bReBhvkkbpzM1yvEenUObR+I2AR2+oiclFeKkVAoGABGv62RriHXMurn1E/KGq\n"
	"tGmCLA+ST6h3xsdyMyduyL22OTkn2OxxSRk3kWk8JFG/ohBxcI6dicsGkqwsmEHn\n"
	"eh19pySL8DImnAly4J5sc+RitFUkTJJUFsdVITmmfU/mT69l45sv70iuKd1wwGEm\n"
	"M/J1At48ZAviW1DHpfPKsgw=\n"
	"-----END PRIVATE KEY-----\n"
;

static const char old_ec_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBgjCCASegAwIBAgIUY24YP+Tv3rjrTthhao0d+bFcMI4wCgYIKoZIzj0EAwIw\n"
	"FTETMBEGA1UEAwwKZnV6eiBlY29sZDAgFw0yNjExMjUwMzIwMTNaGA8yMTI2MTEw\n"
	"MTAzMjAxM1owFTETMBEGA1UEAwwKZnV6eiBlY29sZDBZMBMGByqGSM49AgEGCCqG\n"
	"SM49AwEHA0IABFBgmKSCG/9o1rnDqH/4r5bVs1GsMhwG8tqDYKb+r7odcLURoR4y\n"
	"kLQd8q/Lo5r+rLkI54YpkJ6XgrCwBC7yz3KjUzBRMB0GA1UdDgQWBBT4bsUmd5bH\n"
	"OcOKnWU2B0T1FWtDWDAfBgNVHSMEGDAWgBT4bsUmd5bHOcOKnWU2B0T1FWtDWDAP\n"
	"BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCHWM3FUSaobjnPQXtr\n"
	"lTJ748frveXte1+NiiEgrWLyIwIhAOvCqbKFs2u9UF1x00115KKb3NMHqMVRqUEz\n"
	"EXm2RyQq\n"
	"-----END CERTIFICATE-----\n"
;

static const char old_ec_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgleUSiMeZWZf/CTKN\n"
	"QoDybWh7N6d8/2/cmu/yZOdgLuqhRANCAARQYJikghv/aNa5w6h/+K+W1bNRrDIc\n"
	"BvLag2Cm/q+6HXC1EaEeMpC0HfKvy6Oa/qy5COeGKZCel4KwsAQu8s9y\n"
	"-----END PRIVATE KEY-----\n"
;

static const char new_ec_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfTCCASOgAwIBAgIUI3rq+lOEhO3TIx025DivmEwg9t4wCgYIKoZIzj0EAwIw\n"
	"EzERMA8GA1UEAwwIZnV6eiBuZXcwIBcNMjYxMTI1MDMyMDEzWhgPMjEyNjExMDEw\n"
	"MzIwMTNaMBMxETAPBgNVBAMMCGZ1enogbmV3MFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
	"AQcDQgAE5Wom6fm3xKc8YpJOCxF2NbEqe9wRWXXmmDQmS+kGJtQoPXsgF7lg/Ipn\n"
	"P3kpwz/UH0VL7AWxHhlzvWJfWAZg+aNTMFEwHQYDVR0OBBYEFIeC7ci4gwfPg/Li\n"
	"2/lL6F7Ro7bKMB8GA1UdIwQYMBaAFIeC7ci4gwfPg/Li2/lL6F7Ro7bKMA8GA1Ud\n"
	"EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhANIZMbvT7eaDlIrHq5h4h2/g\n"
	"k2vf86MkfeGEfwheQ0MWAiArK9qWua/N+h/+tp0sw1ZfPzzzwWcGkW0LrTX5xAHu\n"
	"KQ==\n"
	"-----END CERTIFICATE-----\n"
;

static struct sg_cms_party *old_rsa, *old_ec, *new_ec;

static struct sg_cms_party *party(const char *cert, const char *key)
{
	struct sg_buf b;
	struct sg_cms_party *p = NULL;
	sg_buf_init(&b, 1 << 16);
	if (!sg_buf_append_str(&b, cert) || (key && !sg_buf_append_str(&b, key)) ||
	    sg_cms_party_load(b.data, b.len, NULL, key != NULL, &p, NULL) != 1)
		abort();
	sg_buf_free(&b);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_buf out, c1, c2;
	struct sg_cms_rewrap_info info;

	if (old_rsa == NULL) {
		old_rsa = party(old_rsa_cert, old_rsa_key);
		old_ec = party(old_ec_cert, old_ec_key);
		new_ec = party(new_ec_cert, NULL);
	}
	sg_buf_init(&out, 1 << 24);
	sg_buf_init(&c1, 1 << 24);
	sg_buf_init(&c2, 1 << 24);
	(void)sg_cms_encrypted_content(data, size, &c1, &err);
	sg_error_clear(&err);
	struct sg_cms_party *olds[2] = { old_rsa, old_ec };
	for (int i = 0; i < 2; i++) {
		sg_buf_reset(&out);
		int r = sg_cms_rewrap(data, size, olds[i], new_ec, &out, &info, &err);
		if (r != 1 && out.len != 0)
			abort();
		/* the content that came out is the content that went in */
		if (r == 1) {
			sg_buf_reset(&c2);
			if (sg_cms_encrypted_content(out.data, out.len, &c2, &err) != 1 || c1.len != c2.len ||
			    memcmp(c1.data, c2.data, c1.len) != 0)
				abort();
		}
		sg_error_clear(&err);
	}
	sg_buf_free(&out);
	sg_buf_free(&c1);
	sg_buf_free(&c2);
	return 0;
}
