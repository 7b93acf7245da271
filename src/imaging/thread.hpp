#pragma once

namespace resized::imaging {

/// Frees libvips' per-thread state; call on a worker thread after its last
/// resize (vips_thread_shutdown).
void release_thread();

} // namespace resized::imaging
