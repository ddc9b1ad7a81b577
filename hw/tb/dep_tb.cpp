// ctypes entry points of the DEPENDENCE-claim checks (hw/include/edgellm/dep_check.h), linked beside a
// testbench or a project's csim_entry.cpp built with -DEDGELLM_CHECK_DEPS=1 (tests/test_dep_checks.py).
#include "edgellm/dep_check.h"

extern "C" {

// Violations found so far (every claim, every run).
long long tb_dep_violations() { return edgellm::dep_violations(); }

// "claim reads writes violations" lines into buf (cap bytes); returns the length needed.
int tb_dep_report(char *buf, int cap) { return edgellm::dep_report(buf, cap); }

// Forget the counts.
void tb_dep_reset() { edgellm::dep_reset(); }
}
