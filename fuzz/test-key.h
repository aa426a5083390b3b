/* The test-only Ed25519/Cv25519 key "Alice <alice@a.test>" (no passphrase)
 * that the fuzz targets' seed messages are encrypted to and signed by. */
#ifndef SG_FUZZ_TEST_KEY_H
#define SG_FUZZ_TEST_KEY_H

static const char test_key[] =
	"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	"\n"
	"lFgEawZLvhYJKwYBBAHaRw8BAQdAxjTkvWIpVC/tPNsQwaZMipFF4suYTJA4ULpR\n"
	"ctLZPAUAAP9Tp1mugS9qt+gnKZoO6LVKl+7KsRKZxDJzErLjuEAjLBCatBRBbGlj\n"
	"ZSA8YWxpY2VAYS50ZXN0PoiQBBMWCAA4FiEEeJZPwZ5enKz83OtaMPXW0nvPTacF\n"
	"AmsGS74CGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQMPXW0nvPTafjrwD9\n"
	"EY7jU7sqtp/Qd6+OuwAMJAOtUrSEGlVyXQBLo++P2gcBANWIm+lrJZkkXdL795XU\n"
	"EQzSjSv9ghheM/YCO8hALeIFnF0EawZLvhIKKwYBBAGXVQEFAQEHQJ5E/PTnDqbK\n"
	"ADz93rfd31B4BDTb8TryQ9NEGoHe/DETAwEIBwAA/1a/GUDU8vNDSdvd6ukzVbjN\n"
	"AxmG1GyUvspMLTsYGM8wESuIeAQYFggAIBYhBHiWT8GeXpys/NzrWjD11tJ7z02n\n"
	"BQJrBku+AhsMAAoJEDD11tJ7z02niGwBAJvBNKkM8gmiVnC7ojiNMdQvuBMeVjNx\n"
	"zHpuo0cbXYRkAQCVWDuPkGh1dCf5U0yeUBwFX244OLHmD4/mkKw8leinAg==\n"
	"=nqKU\n"
	"-----END PGP PRIVATE KEY BLOCK-----\n"
;

#endif
