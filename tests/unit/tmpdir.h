/* cmocka fixtures shared by the unit tests of the Maildir walks (journal,
 * folders): a fresh directory under /tmp as *state, removed afterwards. */
#ifndef SG_TESTS_UNIT_TMPDIR_H
#define SG_TESTS_UNIT_TMPDIR_H

#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"

static inline int tmpdir_setup(void **state)
{
	char tmpl[] = "/tmp/sg-unit-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	*state = sg_strdup(tmpl);
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	char *cmd = sg_asprintf("rm -rf '%s'", (char *)*state);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(*state);
	return 0;
}

/* dir/rel exists */
static inline bool tmpdir_exists(const char *dir, const char *rel)
{
	char *p = sg_asprintf("%s/%s", dir, rel);
	bool e = access(p, F_OK) == 0;
	free(p);
	return e;
}

#endif
