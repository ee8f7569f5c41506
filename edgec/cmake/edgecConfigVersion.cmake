# Version check of `find_package(edgec <version>)`: compatible when the requested version is not
# newer and names the same major version (while edgec is 0.x: the same major.minor).
set(PACKAGE_VERSION "0.1.0")
string(REGEX MATCH "^[0-9]+\\.[0-9]+" _edgec_minor "${PACKAGE_VERSION}")
string(REGEX MATCH "^[0-9]+" _edgec_major "${PACKAGE_VERSION}")
set(PACKAGE_VERSION_COMPATIBLE TRUE)
if(PACKAGE_FIND_VERSION)
  if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION
     OR NOT PACKAGE_FIND_VERSION_MAJOR EQUAL _edgec_major
     OR (_edgec_major EQUAL 0 AND NOT "${PACKAGE_FIND_VERSION_MAJOR}.${PACKAGE_FIND_VERSION_MINOR}" VERSION_EQUAL _edgec_minor))
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  elseif(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
