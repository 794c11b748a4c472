#include "ft/retry.hpp"
