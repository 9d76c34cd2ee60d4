/* Golden outputs: fixed logs replayed under fixed configs must give the
 * decision records, replay summaries and what-if files whose hashes are
 * stored in tests/data/golden/hashes.txt, with 1 and with 2 threads. A
 * refactor keeps them byte-identical; a change of behaviour updates the
 * hashes in a commit that says why (tests/data/golden/cases.sh). */
#include <criterion/criterion.h>
#include "fixtures.h"

/* Runs cases.sh with threads and compares its lines with hashes.txt. */
static void check_golden(int threads)
{
    cr_assert_eq(bd_test_sh("tests/data/golden/cases.sh %s %d | diff tests/data/golden/hashes.txt - >&2",
                            bd_test_budgetd_bin(), threads),
                 0, "golden outputs differ with --threads %d (diff above: < stored, > now)", threads);
}

TestSuite(golden, .timeout = 300);

Test(golden, replay_and_whatif_match_stored_hashes_one_thread) { check_golden(1); }
Test(golden, replay_and_whatif_match_stored_hashes_two_threads) { check_golden(2); }
