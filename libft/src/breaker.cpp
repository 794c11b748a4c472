#include "ft/breaker.hpp"
