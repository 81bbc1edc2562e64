// Asio.SSL compiled once, apart from boost_impl.cc, so that programs without TLS (sandbox-agent)
// do not link OpenSSL.
#include <boost/asio/ssl/impl/src.hpp>
