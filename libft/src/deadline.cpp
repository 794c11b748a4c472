#include "ft/deadline.hpp"
