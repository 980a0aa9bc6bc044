"""Names a generated GDL component may not take: they would shadow, or be shadowed by, a routine it needs.

A component called NAME is the files ``NAME.pro``, ``NAME_init.pro``, ``NAME_eval.pro``,
``NAME_evaldata.pro`` and ``NAME_spectrum.pro`` on GDL's ``!PATH``, ahead of ULySS and GDL's
libraries. GDL finds a routine by its name alone, so a component named ``strlen`` (a GDL
built-in, which wins: the component's constructor is never called), ``ulyss_ann_fit`` (the
package's own routine, copied beside it) or ``uly_fit`` (ULySS's, shadowed for every fit)
breaks either the component or ULySS. :func:`check_component_name` refuses such names in
one line, checking:

* GDL's reserved words and built-in (system) routines: :data:`GDL_SYSTEM_ROUTINES`, the
  list GDL 1.0.1 gives (``routine_info(/SYSTEM)`` and ``routine_info(/SYSTEM, /FUNCTIONS)``),
  kept here so that the check needs no GDL;
* the package's own routines (``ulyss_ann/gdl/pro/*.pro``);
* the ``.pro`` routines of ULySS (when it is found) and, given their folders (``gdl-export``
  gives GDL's libraries as the GDL engine puts them on ``!PATH``), of other libraries.
"""

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ulyss_ann.errors import UlyssAnnError
from ulyss_ann.gdl.ulyss_location import find_ulyss

__all__ = ["check_component_name", "GDL_SYSTEM_ROUTINES", "GDL_RESERVED_WORDS", "COMPONENT_SUFFIXES"]

#: The routines a component NAME is made of: NAME + each suffix (the templates of component.py).
COMPONENT_SUFFIXES = ("", "_init", "_evaldata", "_eval", "_spectrum")

#: The words of the GDL/IDL language: a routine cannot be called so.
GDL_RESERVED_WORDS = frozenset("""
and begin break case common compile_opt continue do else end endcase endelse endfor endforeach endif endrep
endswitch endwhile eq for foreach forward_function function ge goto gt if inherits le lt mod ne not of
on_ioerror or pro repeat switch then until while xor
""".split())

#: GDL's built-in routines (GDL 1.0.1: routine_info(/SYSTEM) and routine_info(/SYSTEM, /FUNCTIONS), lower case).
GDL_SYSTEM_ROUTINES = frozenset("""
abs acos alog alog10 amoeba arg_present array_equal asin assoc atan axis beseli beselj beselk besely beta
bindgen broyden bytarr byte byteorder bytscl caldat call_external call_function call_method call_procedure catch
cd ceil check_math choldc cholsol cindgen close command_line_args complex complexarr conj contour convert_coord
convol copy_lun cos cosh cpu create_struct crossp cursor dblarr dcindgen dcomplex dcomplexarr defsysv delvar
determ device dfpmin dilate_internalgdl dindgen double dsfmt_exists eigen_exists empty eof erase erf erfc
erode_internalgdl errorf execute exit exp expand_path expat_exists expint fft fftw_exists file_basename
file_copy file_delete file_dirname file_expand_path file_info file_lines file_link file_mkdir file_move
file_readlink file_same file_search file_test findfile findgen findvar finite fix float floor fltarr flush
format_axis_values free_lun fstat fx_root fz_roots gamma gauss_cvf gauss_pdf gaussint gdl_erfinv gdl_sort
geotiff_exists get_drive_list get_kbrd get_login_info get_lun get_screen_size getenv glpk_exists grib_exists
gribapi_clone gribapi_close_file gribapi_count_in_file gribapi_get gribapi_get_data gribapi_get_size
gribapi_new_from_file gribapi_open_file gribapi_release grid_input gsl_exp hash hdf5_exists hdf_close hdf_exists
hdf_ishdf hdf_open hdf_sd_adddata hdf_sd_attrfind hdf_sd_attrinfo hdf_sd_create hdf_sd_dimget hdf_sd_dimgetid
hdf_sd_end hdf_sd_endaccess hdf_sd_fileinfo hdf_sd_getdata hdf_sd_getinfo hdf_sd_nametoindex hdf_sd_select
hdf_sd_start hdf_vd_attach hdf_vd_detach hdf_vd_find hdf_vd_get hdf_vd_read hdf_vg_attach hdf_vg_detach
hdf_vg_getid hdf_vg_getinfo hdf_vg_gettrs heap_free heap_gc heap_refcount help histogram ibeta idl_base64
idl_igamma igamma imaginary imsl_binomialcoef imsl_constant imsl_zeropoly indgen intarr interpol interpolate
invert isa ishft journal julday keyword_set l64indgen la_choldc la_cholsol la_least_squares la_trired laguerre
legendre lindgen linkimage list ll_arc_distance lngamma loadct_internalgdl locale_get logical_and logical_or
logical_true lon64arr lonarr long long64 ludc lusol machar magick_addnoise magick_class magick_close
magick_colormapsize magick_columns magick_create magick_display magick_exists magick_flip magick_indexedcolor
magick_interlace magick_magick magick_matte magick_mattecolor magick_open magick_ping magick_quality
magick_quantize magick_read magick_readcolormaprgb magick_readindexes magick_rows magick_type magick_write
magick_writecolortable magick_writefile magick_writeindexes make_array map_proj_forward map_proj_gctp_forinit
map_proj_gctp_revinit map_proj_inverse matrix_multiply max mean median memory message min moment mpi_exists
n_elements n_params n_tags ncdf4_exists ncdf_attcopy ncdf_attdel ncdf_attget ncdf_attinq ncdf_attname
ncdf_attput ncdf_attrename ncdf_close ncdf_control ncdf_create ncdf_dimdef ncdf_dimid ncdf_dimidsinq ncdf_diminq
ncdf_dimrename ncdf_exists ncdf_fullgroupname ncdf_groupdef ncdf_groupname ncdf_groupparent ncdf_groupsinq
ncdf_inquire ncdf_ncidinq ncdf_open ncdf_unlimdimsinq ncdf_vardef ncdf_varget ncdf_varget1 ncdf_varid
ncdf_varidsinq ncdf_varinq ncdf_varput ncdf_varrename newton nr_gamma obj_class obj_destroy obj_hasmethod
obj_isa obj_new obj_valid objarr on_error openmp_exists openr openu openw oplot orderedhash parse_url path_sep
plot plot_io plot_oi plot_oo plots pm pnglib_exists point_lun poly_2d polyfill powell pref_set prewitt print
printf product proj_exists ptr_free ptr_new ptr_valid ptrarr python python_exists qromb qromo qsimp radon
randomn randomu read readf reads readu real_part rebin recall_commands reform replicate replicate_inplace
resolve_routine restore retall reverse rk4 roberts rotate round routine_dir routine_filepath routine_info
routine_name_internalgdl routine_names save scale3 scope_level scope_traceback scope_varfetch scope_varname
sem_create sem_delete sem_lock sem_release set_plot set_shading setenv shade_surf shapelib_exists shift simplex
sin sindgen sinh size skip_lun smooth sobel socket sort spawn spher_harm spl_init spl_interp sqrt stop strarr
strcmp strcompress stregex string strjoin strlen strlowcase strmid strpos strput strtok strtrim struct_assign
strupcase surface svdc systime t3d t_pdf tag_names tan tanh temporary terminal_size tiff_exists tiff_query
tiff_read timestamp timestamptovalues total transpose triangulate trigrid trisol truncate_lun tv tvcrs tvlct
tvrd typename udunits_exists uindgen uint uintarr ul64indgen ulindgen ulon64arr ulonarr ulong ulong64
unlinkimage unlinksymbol usersym voigt wait wdelete where window writeu wset wshow wtn wxwidgets_exists
x11_exists xyouts
""".split())


def check_component_name(name, what="--name", libraries=()):
    """UlyssAnnError, naming ``what``, when component ``name`` (lower case) or one of its routines
    (NAME_init…) clashes with a GDL word or built-in, a routine of this package, of ULySS (when found)
    or of the GDL libraries ``libraries`` (``!PATH`` entries, e.g. :data:`ulyss_ann.gdl.process.SYSTEM_LIBRARIES`);
    else None."""
    libraries = tuple(libraries)
    clash = _clash(name, libraries)
    if clash:
        routine, owner = clash
        shown = f"its routine {routine}" if routine != name else "it"
        free = [c for c in (f"{name}_ann", f"ann_{name}", "my_component")
                if len(c) <= 31 and not _clash(c, libraries)]
        raise UlyssAnnError(f"{what} {name!r}: {shown} would clash with {owner} of the same name "
                            f"(GDL finds routines by name alone); choose another name, e.g. {free[0]}")
    return None


def _clash(name, libraries):
    """(routine, whose it is) for the first routine of component ``name`` that clashes, else None."""
    for routine in (name + suffix for suffix in COMPONENT_SUFFIXES):
        owner = _owner(routine, libraries)
        if owner:
            return routine, owner
    return None


def _owner(routine, libraries):
    if routine in GDL_RESERVED_WORDS:
        return "a word of the GDL language"
    if routine in GDL_SYSTEM_ROUTINES:
        return "a GDL built-in routine"
    return _library_routines(libraries).get(routine)


@lru_cache(maxsize=4)
def _library_routines(libraries):
    """routine name -> whose it is, for the .pro files of this package, of ULySS and of ``libraries``."""
    folders = [(Path(str(resources.files("ulyss_ann.gdl") / "pro")), "a routine of ulyss_ann")]
    ulyss = find_ulyss()
    if ulyss is not None:
        folders += [(Path(ulyss) / "pgm", "a ULySS routine"), (Path(ulyss) / "dep", "a routine ULySS uses")]
    folders += [(Path(entry.lstrip("+")), "a routine of GDL's libraries") for entry in libraries]
    owners = {}
    for folder, owner in folders:
        if os.path.isdir(folder):
            for pro in sorted(Path(folder).rglob("*.pro")):
                owners.setdefault(pro.stem.lower(), f"{owner} ({pro})")
    return owners
