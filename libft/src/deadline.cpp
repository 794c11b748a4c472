#include "ft/deadline.hpp"

#include <string>

#include "ft/error.hpp"

namespace ft {

deadline deadline::after(time_point now, caf::timespan budget) noexcept {
  if (budget.count() > 0
      && budget > time_point::max() - now)
    return never();
  // `time_point::max() - now` is positive for any realistic `now`; a
  // negative budget moves the deadline into the past.
  return deadline{now + budget};
}

caf::timespan deadline::remaining(time_point now) const noexcept {
  if (is_never())
    return caf::timespan::max();
  if (now >= at_)
    return caf::timespan{0};
  return at_ - now;
}

deadline deadline::child(time_point now,
                         caf::timespan own_timeout) const noexcept {
  return min(*this, after(now, own_timeout));
}

caf::error deadline::check(time_point now) const {
  if (!expired(now))
    return caf::none;
  return make_error(errc::deadline_exceeded,
                    "deadline passed " + render_seconds(now - at_) + " ago");
}

bool retry_fits(const deadline& dl, deadline::time_point now,
                caf::timespan pause) noexcept {
  if (dl.is_never())
    return true;
  if (pause.count() < 0)
    pause = caf::timespan{0};
  // remaining(now) > pause  <=>  now + pause < when()  <=>  not expired then.
  return pause < dl.remaining(now);
}

std::string to_string(const deadline& x, deadline::time_point now) {
  if (x.is_never())
    return "no deadline";
  if (x.expired(now))
    return "deadline passed " + render_seconds(now - x.when()) + " ago";
  return "deadline in " + render_seconds(x.remaining(now));
}

} // namespace ft
