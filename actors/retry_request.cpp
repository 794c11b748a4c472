#include "ft/retry_request.hpp"
