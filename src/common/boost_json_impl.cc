// Boost.JSON compiled once for the programs that use JSON without Asio or Beast: the sandbox's
// toolbox (a static program of its own) and the fuzz targets. The daemons get it from
// boost_impl.cc, with Asio and Beast.
#include <boost/json/src.hpp>
