#include "imaging/thread.hpp"

#include <vips/vips.h>

namespace resized::imaging {

void release_thread() {
  vips_error_clear();
  vips_thread_shutdown();
}

} // namespace resized::imaging
